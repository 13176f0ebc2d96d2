"""Table-driven bad input: every case must exit 1 with the right message on the right line, write nothing.

Each row is (id, file suffix, inventory text, line, message fragment). The line is where a user would look.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeha_test import run

GOOD_INI_MASTERS = "198.18.0.11 name=m1\n198.18.0.12 name=m2\n"
INI_HEAD = "[k8s-master]\n" + GOOD_INI_MASTERS


def ini(vars_: str, masters: str = GOOD_INI_MASTERS, extra: str = "") -> str:
    return f"[k8s-master]\n{masters}{extra}\n[all:vars]\n{vars_}"


def yml(cluster: str, masters: str = "  - {name: m1, address: 198.18.0.11}\n  - {name: m2, address: 198.18.0.12}\n",
        extra: str = "") -> str:
    return f"cluster:\n{cluster}masters:\n{masters}{extra}"


CASES: list[tuple[str, str, str | bytes, int, str]] = [
    # --- syntax and structure
    ("empty-file", ".ini", "", 1, "the file is empty"),
    ("whitespace-only", ".yaml", "\n   \n", 1, "the file is empty"),
    ("binary-file", ".ini", b"\x7fELF\x02\x01\x00\x00binary", 1, "not a text file"),
    ("not-utf8", ".ini", b"[k8s-master]\n198.18.0.11 name=caf\xe9\n", 2, "not valid UTF-8"),
    ("yaml-syntax", ".yaml", "cluster:\n  vip: [198.18.0.10\nmasters: []\n", 3, "YAML syntax"),
    ("yaml-control-char", ".yaml", "cluster:\n  vip: \x1b\n", 2, "does not allow the character U+001B"),
    ("yaml-not-mapping", ".yaml", "- just\n- a list\n", 1, "top level must be a mapping"),
    ("yaml-duplicate-key", ".yaml", yml("  vip: 198.18.0.10\n  vip: 198.18.0.9\n"), 3, "duplicate key"),
    ("yaml-missing-masters", ".yaml", "cluster:\n  vip: 198.18.0.10\n", 1, "masters: missing"),
    ("yaml-masters-empty", ".yaml", "cluster:\n  vip: 198.18.0.10\nmasters: []\n", 1, "no control-plane nodes"),
    ("yaml-masters-not-list", ".yaml", "cluster:\n  vip: 198.18.0.10\nmasters: m1\n", 3, "expected a list"),
    ("yaml-vip-is-list", ".yaml", yml("  vip: [198.18.0.10]\n"), 2, "expected a single value"),
    ("ini-missing-master-group", ".ini", "[k8s-node]\n198.18.0.21 name=w1\n[all:vars]\nvip=198.18.0.10\n", 1,
     "no masters group"),
    ("ini-host-name-not-ip", ".ini", "[k8s-master]\ncp1\ncp2 ansible_host=198.18.0.12\n[all:vars]\nvip=198.18.0.10\n", 2,
     "'cp1' is not an IPv4 address: give ansible_host=ADDRESS"),
    ("ini-bad-header", ".ini", "[k8s-master\n" + GOOD_INI_MASTERS, 1, "malformed group header"),
    ("ini-unclosed-quote", ".ini", ini("vip=198.18.0.10\n", masters='198.18.0.11 name="m1\n'), 2,
     "cannot split line"),
    ("ini-var-without-equals", ".ini", ini("vip 198.18.0.10\n"), 6, "expected key=value"),
    ("ini-children-unknown", ".ini", ini("vip=198.18.0.10\n", extra="[k8s-all:children]\nk8s-nodes\n"), 5,
     "no group named 'k8s-nodes'"),
    ("ini-vars-undefined-group", ".ini", ini("vip=198.18.0.10\n", extra="[k8s-all:vars]\nvip=198.18.0.9\n"), 4,
     "no group 'k8s-all': Ansible refuses vars"),
    # --- wrong types and ranges
    ("lb-port-text", ".ini", ini("vip=198.18.0.10\nlb_port=http\n"), 7, "'http' is not an integer"),
    ("lb-port-range", ".yaml", yml("  vip: 198.18.0.10\n  lb_port: 70000\n"), 3, "70000 is out of range"),
    ("lb-port-equals-apiserver", ".ini", ini("vip=198.18.0.10\nlb_port=6443\n"), 7,
     "lb_port must differ from 6443"),
    ("vrid-out-of-range", ".ini", ini("vip=198.18.0.10\nvirtual_router_id=256\n"), 7, "256 is out of range 1-255"),
    ("vrid-zero", ".yaml", yml("  vip: 198.18.0.10\n  virtual_router_id: 0\n"), 3, "0 is out of range 1-255"),
    ("priority-bool", ".yaml", yml("  vip: 198.18.0.10\n",
                                   "  - {name: m1, address: 198.18.0.11, priority: true}\n"), 4,
     "True is not an integer"),
    ("priority-255", ".ini", ini("vip=198.18.0.10\n", masters="198.18.0.11 name=m1 priority=255\n"), 2,
     "255 is out of range 1-254"),
    ("profile-unknown", ".yaml", yml("  vip: 198.18.0.10\n  profile: turbo\n"), 3, "is not one of fast, classic"),
    ("lb-state-unknown", ".ini", ini("vip=198.18.0.10\n", masters="198.18.0.11 name=m1 lb=PRIMARY\n"), 2,
     "'PRIMARY' is not one of MASTER, BACKUP"),
    ("image-not-qualified", ".yaml", yml("  vip: 198.18.0.10\n  haproxy_image: haproxy:2.6\n"), 3,
     "not a fully qualified image reference"),
    ("k8s-version-bad", ".ini", ini("vip=198.18.0.10\nk8s_version=latest\n"), 7, "not a Kubernetes version"),
    # --- addresses
    ("vip-missing", ".ini", ini("k8s_version=1.30.2\n"), 5, "vip: missing"),  # on the [all:vars] header
    ("vip-not-ip", ".ini", ini("vip=kube-vip.local\n"), 6, "'kube-vip.local' is not an IPv4 address"),
    ("vip-ipv6", ".yaml", yml("  vip: fd00::10\n"), 2, "is not an IPv4 address"),
    ("vip-outside-subnet", ".ini", ini("vip=198.18.9.10\n"), 6, "198.18.9.10/24 must be in the masters' subnet, "
     "but these masters are outside 198.18.9.0/24: m1 (198.18.0.11, line 2), m2 (198.18.0.12, line 3)"),
    ("vip-equals-node", ".ini", ini("vip=198.18.0.12\n"), 6, "is the address of node m2"),
    ("vip-network-address", ".ini", ini("vip=198.18.0.0\n"), 6, "network or broadcast address"),
    ("vip-prefix-conflict", ".yaml", yml("  vip: 198.18.0.10/24\n  vip_prefix: 16\n"), 2, "disagrees with vip_prefix"),
    ("host-not-ip", ".ini", ini("vip=198.18.0.10\n", masters="master-one name=m1\n"), 2,
     "'master-one' is not an IPv4 address"),
    ("host-missing-address", ".yaml", yml("  vip: 198.18.0.10\n", "  - {name: m1}\n"), 4, "missing address"),
    # --- duplicates and ties
    ("duplicate-name", ".ini", ini("vip=198.18.0.10\n", masters="198.18.0.11 name=m1\n198.18.0.12 name=m1\n"),
     3, "duplicate node name (first at line 2)"),
    ("duplicate-address", ".yaml", yml("  vip: 198.18.0.10\n", extra="workers:\n  - {name: w1, address: 198.18.0.12}\n"),
     7, "duplicate address 198.18.0.12"),
    ("priority-tie", ".ini", ini("vip=198.18.0.10\n", masters="198.18.0.11 name=m1 priority=90\n"
                                 "198.18.0.12 name=m2 priority=90\n"), 3, "ties with another master"),
    ("two-masters-marked", ".ini", ini("vip=198.18.0.10\n", masters="198.18.0.11 name=m1 lb=MASTER\n"
                                       "198.18.0.12 name=m2 lb=MASTER\n"), 3, "more than one MASTER"),
    ("weight-below-spread", ".ini", ini("vip=198.18.0.10\nweight=10\n", masters="198.18.0.11 name=m1 priority=100\n"
                                        "198.18.0.12 name=m2 priority=50\n"), 7, "must exceed the priority spread 50"),
    # --- secrets and injection
    ("auth-pass-too-long", ".ini", ini("vip=198.18.0.10\nprofile=classic\nauth_pass=kubernetes\n"), 8,
     "not a VRRP PASS secret"),
    ("name-newline-injection", ".yaml", yml("  vip: 198.18.0.10\n",
                                            '  - {name: "m1\\n}\\nvrrp_script x {", address: 198.18.0.11}\n'), 4,
     "contains the control character U+000A"),
    ("name-brace-injection", ".ini", ini("vip=198.18.0.10\n", masters="198.18.0.11 name=m1}\n"), 2,
     "'m1}' is not a valid node name"),
    ("name-quote-injection", ".ini", ini("vip=198.18.0.10\n", masters="198.18.0.11 'name=m1\"x'\n"), 2,
     "is not a valid node name"),
    ("interface-injection", ".yaml", yml('  vip: 198.18.0.10\n  interface: "eth0 }\\nglobal_defs {"\n'), 3,
     "contains the control character U+000A"),
    ("interface-too-long", ".ini", ini("vip=198.18.0.10\ninterface=averyveryverylongnic0\n"), 7,
     "is not a network interface name"),
    ("health-path-injection", ".yaml", yml('  vip: 198.18.0.10\n  health_path: "/readyz\\" ; rm -rf /"\n'), 3,
     "is not a URL path"),
    ("mac-malformed", ".ini", ini("vip=198.18.0.10\n", masters="198.18.0.11 name=m1 mac=52:54:00:zz:00:01\n"), 2,
     "is not a MAC address"),
    ("gateway-outside-subnet", ".ini", ini("vip=198.18.0.10\ngateway=198.18.7.1\n"), 7,
     "198.18.7.1 is outside the nodes' subnet"),
    ("gateway-is-node", ".ini", ini("vip=198.18.0.10\ngateway=198.18.0.11\n"), 7, "is the VIP or a node's address"),
    ("dns-not-ip", ".yaml", yml("  vip: 198.18.0.10\n  gateway: 198.18.0.1\n  dns: 198.18.0.2, dns.local\n"), 4,
     "'dns.local' is not an IPv4 address"),
    ("dns-without-gateway", ".ini", ini("vip=198.18.0.10\ndns=198.18.0.2\n"), 7, "needs gateway"),
    ("cluster-name-upper", ".yaml", yml("  name: Prod_Cluster\n  vip: 198.18.0.10\n"), 2, "is not a DNS label"),
]


@pytest.mark.parametrize(("suffix", "text", "line", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_reported_with_line(tmp_path: Path, suffix: str, text: str | bytes, line: int,
                                      message: str) -> None:
    inv = tmp_path / f"inventory{suffix}"
    if isinstance(text, bytes):
        inv.write_bytes(text)
    else:
        inv.write_text(text)
    out = tmp_path / "out"
    for args in (("check", str(inv)), ("gen", "userdata", str(inv), "-o", str(out))):
        code, stdout, stderr = run(*args)
        assert code == 1, (args, stdout, stderr)
        lines = [ln for ln in stderr.splitlines() if ": error: " in ln]
        match = [ln for ln in lines if message in ln]
        assert match, f"no error containing {message!r} in:\n{stderr}"
        prefix = f"{inv}:{line}: error: " if line else f"{inv}: error: "
        assert any(ln.startswith(prefix) for ln in match), f"expected {prefix!r}:\n{stderr}"
        # only commands that write say so
        assert stderr.rstrip().endswith("nothing written" if args[0] == "gen" else " warning(s)"), stderr
        assert "Traceback" not in stderr
    assert not out.exists() or not any(out.iterdir())


def test_case_count_meets_the_bar() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    inv = tmp_path / "inv.ini"
    inv.write_text(ini("vip=198.18.0.10\nfavourite_colour=blue\n"))
    code, _, stderr = run("check", str(inv))
    assert code == 0
    assert f"{inv}:7: warning: [all:vars].favourite_colour: unknown variable" in stderr
    code, _, stderr = run("check", "--strict", str(inv))
    assert code == 1
    assert f"{inv}:7: error: [all:vars].favourite_colour: unknown variable" in stderr
