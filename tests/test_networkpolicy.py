"""The NetworkPolicy example, rendered by helm and evaluated against sample peers.

`examples/networkpolicy.yaml` (over the production values) must let in only the proxy port, and
let out only DNS to the cluster DNS pods, HTTPS to the Z.AI origin (public addresses: Z.AI
publishes no fixed range) and, for production's shared rate-limit budget, Redis on 6379.
Rendering, `kubeconform -strict` and kube-score of the same render run in scripts/check-chart.sh
(scenario production+networkpolicy); here the rules' meaning is checked with a small evaluator
of NetworkPolicy semantics (a connection is allowed when some rule matches both peer and port).
"""

from __future__ import annotations

import ipaddress

import pytest

from tools.chart.render import Release, render

pytestmark = pytest.mark.needs_tools     # helm renders the chart

EXAMPLE = Release("production+networkpolicy", "zai-proxy", "mcp",
                  ("values/values-production.yaml", "examples/networkpolicy.yaml"))
# A peer: its namespace labels, its pod labels (None for an address outside the cluster), its IP.
DNS_POD = ({"kubernetes.io/metadata.name": "kube-system"}, {"k8s-app": "kube-dns"}, "10.96.0.10")
REDIS_POD = ({"kubernetes.io/metadata.name": "mcp"}, {"app.kubernetes.io/name": "redis"},
             "10.1.4.7")
CLIENT_POD = ({"kubernetes.io/metadata.name": "mcp"}, {"app": "some-mcp-server"}, "10.1.2.3")
PROMETHEUS = ({"kubernetes.io/metadata.name": "monitoring"},
              {"app.kubernetes.io/name": "prometheus"}, "10.1.9.9")
OTHER_IN_MONITORING = ({"kubernetes.io/metadata.name": "monitoring"}, {"app": "grafana"},
                       "10.1.9.8")
STRANGER_POD = ({"kubernetes.io/metadata.name": "default"}, {"app": "anything"}, "10.1.7.7")
HELM_TEST_POD = ({"kubernetes.io/metadata.name": "mcp"},
                 {"app.kubernetes.io/name": "zai-proxy-test", "app.kubernetes.io/instance":
                  "zai-proxy", "app.kubernetes.io/component": "test"}, "10.1.2.99")


def external(ip: str):
    return ({}, None, ip)


def _proxy(objects: list[dict], kind: str) -> dict:
    """The proxy's object of a kind (production's release also renders the dashboard's)."""
    found = [o for o in objects if o["kind"] == kind
             and o["metadata"]["labels"].get("app.kubernetes.io/component") != "dashboard"]
    assert len(found) == 1, [o["metadata"]["name"] for o in found]
    return found[0]


@pytest.fixture(scope="module")
def objects():
    return render(EXAMPLE)


@pytest.fixture(scope="module")
def rendered(objects):
    return _proxy(objects, "NetworkPolicy"), _proxy(objects, "Deployment")


def _selects(selector: dict | None, labels: dict | None) -> bool:
    if selector is None:
        return True
    if labels is None:
        return False
    assert set(selector) <= {"matchLabels"}, "matchExpressions are not evaluated here"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _peer_matches(peer: dict, candidate, policy_namespace: str) -> bool:
    ns_labels, pod_labels, ip = candidate
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(ip)
        net = ipaddress.ip_network(block["cidr"])
        return (address.version == net.version and address in net and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])))
    if pod_labels is None:
        return False   # a selector peer only ever matches pods
    if "namespaceSelector" in peer:
        in_namespace = _selects(peer["namespaceSelector"], ns_labels)
    else:
        in_namespace = ns_labels.get("kubernetes.io/metadata.name") == policy_namespace
    return in_namespace and _selects(peer.get("podSelector"), pod_labels)


def _port_matches(ports: list | None, port, protocol: str, named: dict) -> bool:
    if not ports:
        return True   # no ports: every port (the case this test forbids below)
    for item in ports:
        wanted = item.get("port")
        if isinstance(wanted, str):
            wanted = named.get(wanted)
        if item.get("protocol", "TCP") == protocol and (wanted is None or wanted == port):
            return True
    return False


def allowed(policy, direction: str, candidate, port: int, protocol: str, named: dict) -> bool:
    rules = policy["spec"].get(direction, [])
    peers_key = "from" if direction == "ingress" else "to"
    namespace = policy["metadata"]["namespace"]
    for rule in rules:
        peers = rule.get(peers_key)
        peer_ok = not peers or any(_peer_matches(p, candidate, namespace) for p in peers)
        if peer_ok and _port_matches(rule.get("ports"), port, protocol, named):
            return True
    return False


def _named_ports(deployment) -> dict:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def test_it_selects_the_proxy_pods_in_both_directions(rendered):
    policy, deployment = rendered
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selects(spec["podSelector"], pod_labels)
    assert not _selects(spec["podSelector"], HELM_TEST_POD[1])
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"] == "mcp"


def test_every_rule_names_its_ports_and_its_peers(rendered):
    """A rule without ports opens every port; one without peers opens it to everyone."""
    policy, _ = rendered
    for direction, key in (("ingress", "from"), ("egress", "to")):
        for rule in policy["spec"][direction]:
            assert rule.get("ports"), (direction, rule)
            assert rule.get(key), (direction, rule)


def test_ingress_only_to_the_proxy_port_from_the_clients_and_prometheus(rendered):
    policy, deployment = rendered
    named = _named_ports(deployment)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert named == {"http": 8080} and env.get("PORT", "8080") == "8080"
    for peer in (CLIENT_POD, PROMETHEUS, HELM_TEST_POD):
        assert allowed(policy, "ingress", peer, 8080, "TCP", named), peer
        for port, protocol in ((8081, "TCP"), (22, "TCP"), (8080, "UDP"), (9090, "TCP")):
            assert not allowed(policy, "ingress", peer, port, protocol, named), (peer, port)
    for stranger in (STRANGER_POD, OTHER_IN_MONITORING, external("203.0.113.5"),
                     external("10.1.2.3")):
        assert not allowed(policy, "ingress", stranger, 8080, "TCP", named), stranger


@pytest.mark.parametrize("peer,port,protocol,expected", [
    (DNS_POD, 53, "UDP", True),
    (DNS_POD, 53, "TCP", True),
    (DNS_POD, 443, "TCP", False),
    (external("8.8.8.8"), 53, "UDP", False),          # DNS only through the cluster's resolver
    (external("203.0.113.10"), 443, "TCP", True),     # the Z.AI origin: a public address
    (external("203.0.113.10"), 80, "TCP", False),
    (external("203.0.113.10"), 6379, "TCP", False),
    (external("10.0.0.1"), 443, "TCP", False),        # private ranges: cluster services
    (external("172.20.0.1"), 443, "TCP", False),
    (external("192.168.1.1"), 443, "TCP", False),
    (external("100.64.3.4"), 443, "TCP", False),      # CGNAT range some CNIs give pods
    (external("169.254.169.254"), 443, "TCP", False),  # cloud metadata service
    (external("169.254.169.254"), 80, "TCP", False),
    (REDIS_POD, 6379, "TCP", True),                   # production's shared rate-limit budget
    (REDIS_POD, 443, "TCP", False),
    (STRANGER_POD, 443, "TCP", False),
    (CLIENT_POD, 8080, "TCP", False),
])
def test_egress_only_to_dns_zai_and_redis(rendered, peer, port, protocol, expected):
    policy, deployment = rendered
    assert allowed(policy, "egress", peer, port, protocol, _named_ports(deployment)) is expected


def test_zai_egress_follows_the_cidrs_and_ports_from_values():
    """With Z.AI's addresses known, only they are reachable, on the ports given."""
    release = Release("np-cidrs", "zai-proxy", "mcp",
                      ("values/values-production.yaml", "examples/networkpolicy.yaml"),
                      ("networkPolicy.egress.zai.cidrs={203.0.113.0/24}",
                       "networkPolicy.egress.zai.ports={443,8443}"))
    policy = next(o for o in render(release, ("templates/networkpolicy.yaml",)))
    for ip, port, expected in (("203.0.113.9", 443, True), ("203.0.113.9", 8443, True),
                               ("203.0.113.9", 80, False), ("198.51.100.1", 443, False),
                               ("8.8.8.8", 443, False)):
        assert allowed(policy, "egress", external(ip), port, "TCP", {}) is expected, (ip, port)


# -- the dashboard service (production's release) -------------------------------------------------
DASHBOARD_POD = ({"kubernetes.io/metadata.name": "mcp"},
                 {"app.kubernetes.io/name": "zai-proxy-dashboard",
                  "app.kubernetes.io/instance": "zai-proxy",
                  "app.kubernetes.io/component": "dashboard"}, "10.1.2.50")
PRODUCTION_POD = ({"kubernetes.io/metadata.name": "mcp"},
                  {"app.kubernetes.io/name": "zai-proxy", "app.kubernetes.io/instance": "zai-proxy",
                   "version": "production"}, "10.1.2.10")
CANARY_POD = ({"kubernetes.io/metadata.name": "devpod"},
              {"app.kubernetes.io/name": "zai-proxy", "app.kubernetes.io/instance":
               "zai-proxy-canary", "version": "canary"}, "10.1.3.10")


def _dashboard(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o["kind"] == kind
             and o["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboard"]
    assert len(found) == 1
    return found[0]


def test_production_lets_the_dashboard_scrape_its_pods(rendered):
    policy, deployment = rendered
    named = _named_ports(deployment)
    assert allowed(policy, "ingress", DASHBOARD_POD, 8080, "TCP", named)
    assert not allowed(policy, "ingress", DASHBOARD_POD, 8090, "TCP", named)


def test_the_canary_lets_in_the_dashboard_from_productions_namespace_only():
    # Callers restricted to one client namespace: the dashboard (in mcp) is let in on its own.
    release = Release("canary+np", "zai-proxy-canary", "devpod",
                      ("values/values-canary.yaml", "examples/networkpolicy.yaml"),
                      ("networkPolicy.ingress.from[0].namespaceSelector.matchLabels"
                       ".kubernetes\\.io/metadata\\.name=clients",))
    objects = render(release)
    policy, deployment = _proxy(objects, "NetworkPolicy"), _proxy(objects, "Deployment")
    named = _named_ports(deployment)
    assert allowed(policy, "ingress", DASHBOARD_POD, 8080, "TCP", named)
    in_devpod = ({"kubernetes.io/metadata.name": "devpod"}, DASHBOARD_POD[1], "10.1.3.50")
    for stranger in (CLIENT_POD, in_devpod):
        assert not allowed(policy, "ingress", stranger, 8080, "TCP", named), stranger


def test_the_dashboard_reaches_both_releases_pods_and_nothing_else(objects):
    policy, deployment = _dashboard(objects, "NetworkPolicy"), _dashboard(objects, "Deployment")
    named = _named_ports(deployment)
    assert named == {"http": 8090}
    assert _selects(policy["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]
                    ["labels"])
    assert not _selects(policy["spec"]["podSelector"], PRODUCTION_POD[1])
    for peer, port, expected in ((PRODUCTION_POD, 8080, True), (CANARY_POD, 8080, True),
                                 (DNS_POD, 53, True), (CANARY_POD, 443, False),
                                 (REDIS_POD, 6379, False), (STRANGER_POD, 8080, False),
                                 (external("203.0.113.10"), 443, False)):
        assert allowed(policy, "egress", peer, port, "TCP" if port != 53 else "UDP",
                       named) is expected, (peer, port)
    # Anyone may open the page (no `from` given), on its port only.
    assert allowed(policy, "ingress", CLIENT_POD, 8090, "TCP", named)
    assert not allowed(policy, "ingress", CLIENT_POD, 8080, "TCP", named)
