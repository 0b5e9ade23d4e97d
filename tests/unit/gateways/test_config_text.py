"""Sanitised configuration text: no planted secret survives `sanitize`, every one is registered
with the masker, and `fill_secrets` puts each back from the raw text (or says which line it
cannot)."""

from __future__ import annotations

import doctest

import pytest

from runbooks.core import secrets
from runbooks.core.errors import InventoryError, SecretUnavailable
from runbooks.gateways import config_text
from runbooks.gateways.config_text import PLACEHOLDER, fill_secrets, sanitize

IOS = """\
Building configuration...
!
version 15.9
hostname r1
!
enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0
enable password 7 0822455D0A16
username netops privilege 15 secret 9 $9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM
username backup password 0 Backup-Pw-41
!
interface GigabitEthernet0/1
 ip address 10.0.0.1 255.255.255.254
 ip ospf message-digest-key 1 md5 Ospf-Md5-Key
!
router bgp 65001
 neighbor 10.0.0.2 remote-as 65002
 neighbor 10.0.0.2 password Bgp-Ios-Pw-1
!
snmp-server community Comm-Ro-77 RO
snmp-server community Comm-Rw-88 RW 10
snmp-server host 10.9.9.9 version 2c Comm-Trap-99
tacacs-server key 7 Tacacs-Key-5
ntp authentication-key 1 md5 Ntp-Md5-Key 7
key chain KC
 key 1
  key-string Key-Chain-Str
line vty 0 4
 password 7 Vty-Line-Pw-3
!
end
"""
IOS_SECRETS = [
    "$1$mERr$hx5rVt7rPNoS4wqbXKX7m0",
    "0822455D0A16",
    "$9$nhEmQVczB7dqsO$X.HsgL6x1il0RxkOSSvyQYwucySCt7qFm4v7pqCxkKM",
    "Backup-Pw-41",
    "Ospf-Md5-Key",
    "Bgp-Ios-Pw-1",
    "Comm-Ro-77",
    "Comm-Rw-88",
    "Comm-Trap-99",
    "Tacacs-Key-5",
    "Ntp-Md5-Key",
    "Key-Chain-Str",
    "Vty-Line-Pw-3",
]

EOS = """\
! device: sw1 (DCS-7050SX3-48YC8, EOS-4.30.1F)
!
hostname sw1
!
enable password sha512 $6$Eos.Enable$Rk0EnableHashValue
aaa root secret sha512 $6$Eos.Root$RootHashValue1
username admin privilege 15 role network-admin secret sha512 $6$Eos.Adm$AdminHashVal
!
snmp-server community Eos-Comm-1 ro
!
router bgp 65010
   neighbor SPINES peer group
   neighbor SPINES password 7 Eos+Bgp+Enc==
   neighbor 10.1.0.1 peer group SPINES
!
end
"""
EOS_SECRETS = [
    "$6$Eos.Enable$Rk0EnableHashValue",
    "$6$Eos.Root$RootHashValue1",
    "$6$Eos.Adm$AdminHashVal",
    "Eos-Comm-1",
    "Eos+Bgp+Enc==",
]

JUNOS = """\
## Last commit: 2026-12-01 10:00:00 UTC by ops
version 23.4R1.9;
system {
    host-name mx1;
    root-authentication {
        encrypted-password "$6$jUn0s$RootEncryptedHash"; ## SECRET-DATA
    }
    login {
        user ops {
            class super-user;
            authentication {
                encrypted-password "$6$jUn0s$OpsEncryptedHash"; ## SECRET-DATA
            }
        }
    }
}
snmp {
    community Junos-Comm-2 {
        authorization read-only;
    }
}
protocols {
    bgp {
        group peers {
            authentication-key "$9$Junos.Bgp.Key.9"; ## SECRET-DATA
            neighbor 10.2.0.2;
        }
    }
}
"""
JUNOS_SECRETS = [
    "$6$jUn0s$RootEncryptedHash",
    "$6$jUn0s$OpsEncryptedHash",
    "Junos-Comm-2",
    "$9$Junos.Bgp.Key.9",
]

FRR = """\
frr defaults traditional
hostname leaf1
password Vty-Frr-Pw
enable password Frr-Enable-Pw
log syslog informational
!
interface swp1
 ip ospf authentication-key Frr-Ospf-Key
exit
!
router bgp 65101
 bgp router-id 198.18.1.11
 neighbor 10.0.1.0 remote-as 65001
 neighbor 10.0.1.0 password Frr-Bgp-Pw-1
 neighbor 10.0.1.2 remote-as 65002
 neighbor 10.0.1.2 password Frr-Bgp-Pw-2
exit
!
router isis CORE
 area-password clear Frr-Isis-Area
exit
!
"""
FRR_SECRETS = [
    "Vty-Frr-Pw",
    "Frr-Enable-Pw",
    "Frr-Ospf-Key",
    "Frr-Bgp-Pw-1",
    "Frr-Bgp-Pw-2",
    "Frr-Isis-Area",
]

BIRD = """\
router id 198.18.1.21;
protocol device { }
protocol bgp spine1 {
  local 10.0.2.1 as 65201;
  neighbor 10.0.2.0 as 65001;
  password "Bird-Bgp-Pw 1";
  ipv4 { import all; export all; };
}
protocol bgp spine2 {
  local 10.0.2.3 as 65201;
  neighbor 10.0.2.2 as 65002;
  password "Bird-Bgp-Pw-2";
  ipv4 { import all; export all; };
}
"""
BIRD_SECRETS = ["Bird-Bgp-Pw 1", "Bird-Bgp-Pw-2"]

CONFIGS = {
    "ios": (IOS, IOS_SECRETS),
    "eos": (EOS, EOS_SECRETS),
    "junos": (JUNOS, JUNOS_SECRETS),
    "frr": (FRR, FRR_SECRETS),
    "bird": (BIRD, BIRD_SECRETS),
}


@pytest.mark.parametrize("platform", CONFIGS)
def test_no_planted_secret_survives(platform: str) -> None:
    raw, planted = CONFIGS[platform]
    clean = sanitize(raw)
    for value in planted:
        assert value in raw
        assert value not in clean, f"{platform}: {value!r} left in the sanitised text"
    assert clean.count(PLACEHOLDER) == len(planted)


@pytest.mark.parametrize("platform", CONFIGS)
def test_each_secret_found_is_masked_everywhere(platform: str) -> None:
    raw, planted = CONFIGS[platform]
    sanitize(raw)
    for value in planted:
        assert secrets.MASK in secrets.mask_text(f"error near {value} here")


@pytest.mark.parametrize("platform", CONFIGS)
def test_fill_secrets_round_trips(platform: str) -> None:
    raw, _ = CONFIGS[platform]
    assert fill_secrets(sanitize(raw), raw) == raw


@pytest.mark.parametrize("platform", CONFIGS)
def test_what_is_not_a_secret_stays(platform: str) -> None:
    raw, _ = CONFIGS[platform]
    kept = [line for line in raw.splitlines() if PLACEHOLDER not in sanitize(line)]
    assert all(line in sanitize(raw).splitlines() for line in kept)


def test_a_diff_is_sanitised_too() -> None:
    frr_diff = (
        "Lines To Delete\n===============\nrouter bgp 65101\n no neighbor 10.0.1.2 password "
        "Old-Pw-Gone\n\nLines To Add\n============\nrouter bgp 65101\n neighbor 10.0.1.2 "
        "password New-Pw-Here"
    )
    ios_diff = "+enable secret 5 $1$new$Enable\n-enable secret 5 $1$old$Enable\n"
    eos_diff = (
        "--- system:/running-config\n+++ session:/c\n@@ -5 +5 @@\n+   neighbor S password 7 Eos=\n"
    )
    junos_diff = (
        '[edit protocols bgp group peers]\n+   authentication-key "$9$Nw.Key"; ## SECRET-DATA'
    )
    for diff, value in [
        (frr_diff, "Old-Pw-Gone"),
        (frr_diff, "New-Pw-Here"),
        (ios_diff, "$1$new$Enable"),
        (ios_diff, "$1$old$Enable"),
        (eos_diff, "Eos="),
        (junos_diff, "$9$Nw.Key"),
    ]:
        assert value not in sanitize(diff)
        assert sanitize(diff).count("\n") == diff.count("\n")


def test_an_unfillable_placeholder_names_its_line() -> None:
    without_bgp_passwords = "\n".join(
        line for line in FRR.splitlines() if "neighbor" not in line or "password" not in line
    )
    missing = r"line 14 'neighbor 10\.0\.1\.0 password <removed>'"
    with pytest.raises(SecretUnavailable, match=missing) as e:
        fill_secrets(sanitize(FRR), without_bgp_passwords)
    assert isinstance(e.value, InventoryError)
    assert "Frr-Bgp-Pw-1" not in str(e.value)


def test_later_sources_fill_what_the_first_lacks() -> None:
    """Rack-out's undo: the bare running configuration lost the BGP passwords; NetBox's fresh
    "service" rendering still has them."""
    bare = "frr defaults traditional\nhostname leaf1\npassword Vty-Frr-Pw\n"
    assert fill_secrets(sanitize(FRR), bare, FRR) == FRR


def test_the_same_line_in_two_sections_is_filled_from_its_own_section() -> None:
    raw = (
        "router bgp 1 vrf red\n neighbor 10.0.0.1 password Red-Pw-1\nexit\n"
        "router bgp 1 vrf blue\n neighbor 10.0.0.1 password Blue-Pw-2\nexit\n"
    )
    assert fill_secrets(sanitize(raw), raw) == raw
    clean = sanitize(raw)
    flat = " neighbor 10.0.0.1 password <removed>\n"
    with pytest.raises(SecretUnavailable, match="line 1"):
        fill_secrets(flat, raw)  # two sections disagree and nothing says which
    assert fill_secrets(clean, raw + raw) == raw  # the same twice is no disagreement


JUNOS_TWO_KEYS = """\
protocols {
    bgp {
        group FABRIC {
            neighbor 198.18.1.1 {
                authentication-key "$9$Leaf1.Session.Key"; ## SECRET-DATA
                peer-as 65101;
            }
            neighbor 198.18.1.3 {
                authentication-key "$9$Leaf2.Session.Key"; ## SECRET-DATA
                peer-as 65102;
            }
        }
    }
}
"""


def test_a_section_gone_from_the_source_takes_no_secret_of_another_section() -> None:
    """Undoing a rack-out on Junos: leaf1's neighbour is gone from spine1's running
    configuration, leaf2's (the same line shape, another key) is still there. Its key must
    not be put on leaf1's neighbour: the line is named instead."""
    recorded = sanitize(JUNOS_TWO_KEYS)
    leaf1_gone = "\n".join(JUNOS_TWO_KEYS.splitlines()[:3] + JUNOS_TWO_KEYS.splitlines()[7:])
    assert "Leaf1" not in leaf1_gone and "$9$Leaf2.Session.Key" in leaf1_gone
    missing = r"line 5 'authentication-key \"<removed>\"; ## SECRET-DATA'"
    with pytest.raises(SecretUnavailable, match=missing):
        fill_secrets(recorded, leaf1_gone)
    assert fill_secrets(recorded, leaf1_gone, JUNOS_TWO_KEYS) == JUNOS_TWO_KEYS  # a later source
    assert fill_secrets(recorded, JUNOS_TWO_KEYS) == JUNOS_TWO_KEYS


def test_sections_are_compared_whole_not_by_their_last_line() -> None:
    """Two BGP groups each with a neighbour of the same address: the nearest section line
    reads the same, the path above it does not."""
    raw = (
        "protocols {\n    bgp {\n        group RED {\n            neighbor 10.0.0.1 {\n"
        '                authentication-key "$9$Red.Key"; ## SECRET-DATA\n'
        "            }\n        }\n        group BLUE {\n            neighbor 10.0.0.1 {\n"
        '                authentication-key "$9$Blue.Key"; ## SECRET-DATA\n'
        "            }\n        }\n    }\n}\n"
    )
    assert fill_secrets(sanitize(raw), raw) == raw
    only_blue = "\n".join(raw.splitlines()[:2] + raw.splitlines()[7:]) + "\n"
    with pytest.raises(SecretUnavailable, match="line 5"):
        fill_secrets(sanitize(raw), only_blue)


def test_a_blank_line_inside_a_section_keeps_the_section() -> None:
    """BIRD: a blank line inside a protocol must not make its password line section-less
    (where the password of any other protocol would read the same)."""
    raw = (
        'protocol bgp a {\n\tneighbor 10.0.0.0 as 65001;\n\n\tpassword "Pw-A";\n}\n'
        'protocol bgp b {\n\tneighbor 10.0.0.2 as 65002;\n\n\tpassword "Pw-B";\n}\n'
    )
    assert fill_secrets(sanitize(raw), raw) == raw
    without_a = "\n".join(raw.splitlines()[5:]) + "\n"
    with pytest.raises(SecretUnavailable, match="line 4"):
        fill_secrets(sanitize(raw), without_a)


def test_text_without_placeholders_is_left_alone() -> None:
    assert fill_secrets("hostname r1\n") == "hostname r1\n"


def test_the_doctests() -> None:
    assert doctest.testmod(config_text).failed == 0


# -- forms a review found missing (issue 15) -----------------------------------------------------

NEW_FORMS = {
    "ios isakmp key, typed": (
        "crypto isakmp key 6 Psk-Typed-6 address 10.0.0.1\n",
        ["Psk-Typed-6"],
    ),
    "ios isakmp key": ("crypto isakmp key Psk-Plain-1 hostname vpn1\n", ["Psk-Plain-1"]),
    "ios keyring": (
        "crypto keyring KR\n"
        " pre-shared-key address 10.0.0.1 key Kr-Address-Psk\n"
        " pre-shared-key address 10.1.0.0 255.255.0.0 key 0 Kr-Net-Psk\n"
        " pre-shared-key hostname peer1 key Kr-Host-Psk\n"
        "crypto ikev2 keyring K2\n peer P\n  pre-shared-key local Kr-Local-Psk\n"
        "  pre-shared-key remote Kr-Remote-Psk\n",
        ["Kr-Address-Psk", "Kr-Net-Psk", "Kr-Host-Psk", "Kr-Local-Psk", "Kr-Remote-Psk"],
    ),
    "frr isis": (
        "interface swp1\n isis password clear Isis-Clear-Pw\nexit\n"
        "interface swp2\n isis password md5 Isis-Md5-Pw\nexit\n",
        ["Isis-Clear-Pw", "Isis-Md5-Pw"],
    ),
    "frr ospf virtual link": (
        "router ospf\n area 0.0.0.1 virtual-link 1.1.1.1 message-digest-key 1 md5 Vl-Md5-Key\n"
        " area 0.0.0.2 virtual-link 2.2.2.2 authentication-key Vl-Simple-Key\n"
        " area 0.0.0.3 virtual-link 3.3.3.3 authentication message-digest message-digest-key 2"
        " md5 Vl-Both-Key\nexit\n",
        ["Vl-Md5-Key", "Vl-Simple-Key", "Vl-Both-Key"],
    ),
    "eos snmpv3 user": (
        "snmp-server user u1 g1 v3 auth sha Snmp-Auth-Key priv aes 128 Snmp-Priv-Key\n"
        "snmp-server user u2 g1 v3 localized 0123 auth sha256 Snmp-Auth-2 priv aes256 Snmp-Priv-2\n"
        "snmp-server user u3 g1 v3 auth md5 Snmp-Auth-Only\n",
        ["Snmp-Auth-Key", "Snmp-Priv-Key", "Snmp-Auth-2", "Snmp-Priv-2", "Snmp-Auth-Only"],
    ),
    "ios radius/tacacs server key": (
        "radius server R1\n address ipv4 10.0.0.9 auth-port 1812 acct-port 1813\n"
        " key Radius-Bare-Key\n!\ntacacs server T1\n address ipv4 10.0.0.8\n key Tacacs-Bare-Key\n"
        "!\ntacacs server T2\n address ipv4 10.0.0.7\n key 7 070C285F4D06\n",
        ["Radius-Bare-Key", "Tacacs-Bare-Key", "070C285F4D06"],
    ),
    "bird spacing and escapes": (
        'protocol bgp p1 {\n\tpassword  "Bird-Two-Spaces";\n}\n'
        'protocol bgp p2 {\n\tpassword "Bird-Esc\\"aped";\n}\n',
        ["Bird-Two-Spaces", 'Bird-Esc\\"aped'],
    ),
    "junos xml": (
        "<configuration>\n    <protocols>\n        <bgp>\n            <group>\n"
        "                <name>peers</name>\n"
        "                <authentication-key>$9$Xml.Bgp.Key</authentication-key>\n"
        "            </group>\n        </bgp>\n    </protocols>\n    <system>\n"
        "        <root-authentication>\n"
        "            <encrypted-password>$6$Xml$Root.Hash</encrypted-password>\n"
        "        </root-authentication>\n    </system>\n    <snmp>\n        <community>\n"
        "            <name>Xml-Community</name>\n"
        "            <authorization>read-only</authorization>\n        </community>\n"
        "    </snmp>\n</configuration>\n",
        ["$9$Xml.Bgp.Key", "$6$Xml$Root.Hash", "Xml-Community"],
    ),
    "junos json": (
        '{\n    "configuration" : {\n        "protocols" : {\n            "bgp" : {\n'
        '                "group" : [{"name" : "peers", "authentication-key" : "$9$Json.Key",'
        ' "password": "Json-Plain-Pw"}]\n            }\n        }\n    }\n}\n',
        ["$9$Json.Key", "Json-Plain-Pw"],
    ),
}


@pytest.mark.parametrize("form", NEW_FORMS)
def test_the_forms_a_review_found_are_sanitised_and_filled_back(form: str) -> None:
    raw, planted = NEW_FORMS[form]
    clean = sanitize(raw)
    for value in planted:
        assert value in raw
        assert value not in clean, f"{form}: {value!r} left in {clean!r}"
        assert secrets.MASK in secrets.mask_text(f"error near {value} here"), value
    assert clean.count("\n") == raw.count("\n")
    assert fill_secrets(clean, raw) == raw


def test_a_bird_password_with_an_escaped_quote_goes_whole() -> None:
    assert sanitize('\tpassword "Esc\\"aped-Tail";') == f'\tpassword "{PLACEHOLDER}";'


@pytest.mark.parametrize("mark", ["+", "-", "!", ">", "*"])
@pytest.mark.parametrize("gap", ["", " ", "  "])
def test_every_diff_mark_is_sanitised(mark: str, gap: str) -> None:
    line = f"{mark}{gap}neighbor 10.0.0.1 password Diff-Mark-Pw"
    assert sanitize(line) == f"{mark}{gap}neighbor 10.0.0.1 password {PLACEHOLDER}"


ORDINARY = """\
key chain OSPF-KEYS
 key 1
  key-string 7 0822455D0A16
key chain BARE
 key 2
ip ssh pubkey-chain
 username admin
  key-hash ssh-rsa 2B9F0E62A4A1F3C1
interface swp1
 ip ospf authentication key-chain OSPF-KEYS
 ip ospf authentication message-digest
crypto isakmp policy 10
 authentication pre-share
snmp-server user u1 g1 v3
username admin nopassword
mpls ldp password required
<configuration>
    <snmp>
        <location>lab</location>
    </snmp>
</configuration>
{"name": "peers", "key": "value", "passwordSet": true}
"""


def test_ordinary_lines_are_left_alone() -> None:
    clean = sanitize(ORDINARY)
    assert clean.replace("7 <removed>", "7 0822455D0A16") == ORDINARY


def test_a_secret_in_one_section_is_not_one_in_another() -> None:
    """A bare "key <value>" is a secret in a radius/tacacs server, a key number elsewhere."""
    text = "key chain K\n key Not-A-Secret\nradius server R\n key Radius-Secret\n"
    assert (
        sanitize(text) == f"key chain K\n key Not-A-Secret\nradius server R\n key {PLACEHOLDER}\n"
    )


def test_napalm_s_multi_line_filter_keeps_what_ours_cleaned() -> None:
    """NAPALM's radius/tacacs server filter spans lines; the key type before it stays."""
    raw = "tacacs server T1\n address ipv4 10.0.0.8\n key 7 070C285F4D06\n"
    assert sanitize(raw).endswith(f" key 7 {PLACEHOLDER}\n")
    assert secrets.mask_text("070C285F4D06") == secrets.MASK


def test_structured_answers_are_sanitised() -> None:
    answer = {
        "show running-config | json": {
            "router bgp 65001": {"neighbor 10.0.0.1 password Eos-Json-Pw": None},
            "cmds": ["neighbor 10.0.0.2 password Eos-Json-Pw-2", "hostname r1"],
        },
        "show snmp": {
            "users": [{"authKey": "Data-Auth-Key", "privKey": "Data-Priv-Key", "name": "u1"}],
            "pre_shared_key": {"value": "Data-Psk"},
            "Authentication-Key": "$9$Data.Key",
            "hash": "$6$Data$Hash",
            "count": 3,
            "enabled": True,
            "password": "",
        },
    }
    clean = config_text.sanitize_data(answer)
    flat = repr(clean)
    for value in [
        "Eos-Json-Pw-2",
        "Data-Auth-Key",
        "Data-Priv-Key",
        "Data-Psk",
        "$9$Data.Key",
        "$6$Data$Hash",
    ]:
        assert value not in flat, value
        assert secrets.mask_text(value) == secrets.MASK
    assert clean["show snmp"]["users"][0]["name"] == "u1"
    assert clean["show snmp"]["count"] == 3 and clean["show snmp"]["enabled"] is True
    assert clean["show snmp"]["password"] == ""
    assert clean["show running-config | json"]["cmds"][1] == "hostname r1"
    answers = {"show snmp community": "Location lab", "show run | include password": "! x"}
    assert config_text.sanitize_data(answers) == answers  # commands are no secret names


def test_the_lab_s_rendered_configurations_lose_only_their_passwords() -> None:
    """FRR and BIRD configurations as NetBox renders them for the lab sanitise to themselves
    but for the password lines, and fill back to themselves."""
    pytest.importorskip("netaddr")
    from tests.support.netbox_templates import Cable, Device, Iface, render

    peer = Device("spine1", 65001, [])
    peer.ifaces = [Iface("swp4", ["198.18.1.12/31"], device=peer, id=11)]
    device = Device(
        "border1",
        65201,
        [
            Iface("eth0", ["198.18.0.24/24"], id=1),
            Iface("lo", ["198.18.255.21/32"], id=2),
            Iface("swp1", ["198.18.1.13/31"], Cable("connected"), peer.ifaces, id=3),
        ],
        mgmt="eth0",
    )
    for template in ("frr.conf.j2", "bird.conf.j2"):
        for intent in ("service", "drain", "bare"):
            plain = render(template, device, runbooks_intent=intent)
            raw = render(template, device, runbooks_intent=intent, bgp_password="Lab-Bgp-Pw")
            assert sanitize(plain) == plain, (template, intent)
            clean = sanitize(raw)
            changed = [
                (a, b) for a, b in zip(raw.splitlines(), clean.splitlines(), strict=True) if a != b
            ]
            assert all("password" in a and "Lab-Bgp-Pw" in a for a, _ in changed)
            assert "Lab-Bgp-Pw" not in clean
            assert fill_secrets(clean, raw) == raw
