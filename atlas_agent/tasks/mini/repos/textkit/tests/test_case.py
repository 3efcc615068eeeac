from textkit import split_words, to_camel, to_kebab, to_pascal, to_snake


def test_split_camel_case_with_acronym():
    assert split_words("parseHTTPResponse") == ["parse", "HTTP", "Response"]


def test_split_separators_and_digits():
    assert split_words("user_id-2 list") == ["user", "id", "2", "list"]


def test_split_trailing_acronym():
    assert split_words("getUserID") == ["get", "User", "ID"]


def test_to_snake():
    assert to_snake("HTTPServerError") == "http_server_error"
    assert to_snake("already_snake") == "already_snake"


def test_to_kebab():
    assert to_kebab("Some Title Text") == "some-title-text"


def test_to_pascal():
    assert to_pascal("parse_http_response") == "ParseHttpResponse"
    assert to_pascal("parse HTTP response", keep_acronyms=True) == "ParseHTTPResponse"


def test_to_camel():
    assert to_camel("Parse_HTTP_response") == "parseHttpResponse"
    assert to_camel("") == ""


def test_round_trip():
    assert to_snake(to_camel("max_retry_count")) == "max_retry_count"
