"""Hop-by-hop stripping and forwarded headers, as pure functions."""

from __future__ import annotations

from multidict import CIMultiDict

from strangler.forward.headers import ForwardedFor, TrustedNetworks, end_to_end


def test_end_to_end_drops_hop_by_hop_and_connection_listed_names() -> None:
    h = CIMultiDict(
        [
            ("Connection", "close, X-Hop"),
            ("x-hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Proxy-Connection", "keep-alive"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Host", "h"),
        ]
    )
    out = end_to_end(h, drop=("Host",))
    assert list(out.items()) == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_forwarded_untrusted_replaces_and_quotes_ipv6() -> None:
    incoming = CIMultiDict({"X-Forwarded-For": "1.1.1.1", "Forwarded": "for=1.1.1.1"})
    out = incoming.copy()
    ForwardedFor("::1", "https", "[::1]:8080", trusted=False).apply(out, incoming)
    assert out["X-Forwarded-For"] == "::1"
    assert out["X-Forwarded-Proto"] == "https"
    assert out["X-Forwarded-Host"] == "[::1]:8080"
    assert out["Forwarded"] == 'for="[::1]";proto=https;host="[::1]:8080"'


def test_forwarded_trusted_appends_to_every_prior_value() -> None:
    incoming = CIMultiDict(
        [("X-Forwarded-For", "1.1.1.1"), ("X-Forwarded-For", "2.2.2.2"), ("Forwarded", "for=1")]
    )
    out = incoming.copy()
    ForwardedFor("10.0.0.5", "http", "shop", trusted=True).apply(out, incoming)
    assert out.getall("X-Forwarded-For") == ["1.1.1.1, 2.2.2.2, 10.0.0.5"]
    assert out["Forwarded"] == "for=1, for=10.0.0.5;proto=http;host=shop"


def test_trusted_networks() -> None:
    nets = TrustedNetworks(["10.0.0.0/8", "::1/128"])
    assert "10.1.2.3" in nets
    assert "::1" in nets
    assert "11.0.0.1" not in nets
    assert "not-an-ip" not in nets
    assert not TrustedNetworks([])
    assert "10.1.2.3" not in TrustedNetworks([])


def test_forwarded_styles_add_one_or_three_fields() -> None:
    incoming: CIMultiDict[str] = CIMultiDict()
    only = CIMultiDict[str]()
    ForwardedFor("10.0.0.5", "http", "shop", trusted=False).apply(only, incoming, "rfc7239")
    assert list(only.items()) == [("Forwarded", "for=10.0.0.5;proto=http;host=shop")]
    xf = CIMultiDict[str]()
    ForwardedFor("10.0.0.5", "http", "shop", trusted=False).apply(xf, incoming, "x-forwarded")
    assert sorted(xf) == ["X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"]


def test_end_to_end_compares_names_case_insensitively() -> None:
    # Header names are case-insensitive: a client writing them in lower (or upper)
    # case must not get credentials for the proxy or framing headers past it.
    h = CIMultiDict(
        [
            ("CONNECTION", "X-HOP"),
            ("x-hop", "1"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("expect", "100-continue"),
            ("x-end", "kept"),
        ]
    )
    out = end_to_end(h, drop=("Expect",))
    assert list(out.items()) == [("x-end", "kept")]
