"""Local HTTP stand-ins for model APIs, so backends are tested with their real SDKs over real sockets."""
