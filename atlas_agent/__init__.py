"""Atlas: an agentic SWE-bench evaluation framework."""

__version__ = "0.1.0"
