"""resolv.conf for a namespace: loopback resolvers replaced by reachable ones."""

from minibox.net.resolv import FALLBACK, for_namespace


def test_non_loopback_resolvers_are_kept_as_is():
    text = "search example.org\nnameserver 10.255.255.53\noptions ndots:2\n"
    assert for_namespace(text, "") == text


def test_loopback_resolver_is_replaced_by_the_upstream_list():
    host = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
    upstream = "nameserver 192.0.2.53\nnameserver 127.0.0.1\n"
    out = for_namespace(host, upstream)
    assert "127.0.0" not in out
    assert "nameserver 192.0.2.53" in out and "search lan" in out and "options edns0" in out


def test_only_loopback_and_no_upstream_falls_back():
    out = for_namespace("nameserver 127.0.0.1\nnameserver ::1\n", "")
    assert [ln.split()[1] for ln in out.splitlines()] == list(FALLBACK)


def test_loopback_next_to_a_real_one_is_dropped():
    out = for_namespace("nameserver 127.0.0.1\nnameserver 10.0.0.2\n", "")
    assert out == "nameserver 10.0.0.2\n"
