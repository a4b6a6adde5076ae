#!/usr/bin/env bash
# Checks the monitoring of a live install of both releases, read-only, with kubectl and jq:
#   - the monitoring namespace exists;
#   - each variant's ServiceMonitor selects its Service (app, version) in its namespace, scrapes
#     port http at /metrics and relabels the Service label `version` into `deployment_variant`;
#   - each variant's Service carries the labels its ServiceMonitor selects and a port named http;
#   - each PrometheusRule holds its group and alerts (the canary's eight of the monitoring setup);
#   - the Grafana dashboard ConfigMap carries the sidecar label and holds valid JSON with the ten
#     panels of the monitoring setup (titles and types, in order, each querying deployment_variant).
# Prints one PASS/FAIL line per check (with the reason under a FAIL) and a summary; exits 1 when
# any check fails, 2 on bad arguments or a missing tool. Every check runs even when one fails.
#
# Usage: scripts/verify-monitoring.sh [options]    (defaults: the monitoring setup's names)
#   --monitoring-namespace NS   ServiceMonitors, PrometheusRules, dashboard   [monitoring]
#   --production-namespace NS   the production release's namespace            [mcp]
#   --canary-namespace NS       the canary release's namespace                [devpod]
#   --production-release NAME   production's Helm release                     [zai-proxy]
#   --canary-release NAME       the canary's Helm release                     [zai-proxy-canary]
#   --dashboard-label KEY=VALUE the Grafana sidecar's label                   [grafana_dashboard=1]
# Object names follow the chart from the release names (no fullnameOverride/nameOverride).
# kubectl uses the current context; KUBECTL="kubectl --context prod" picks another.
set -uo pipefail

monitoring_ns=monitoring
production_ns=mcp
canary_ns=devpod
production_release=zai-proxy
canary_release=zai-proxy-canary
dashboard_label=grafana_dashboard=1

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { printf 'verify-monitoring: %s\n' "$*" >&2; exit 2; }

while (($#)); do
    arg="$1"
    value=""
    given=0
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        --*=*) value="${arg#*=}"; arg="${arg%%=*}"; given=1 ;;
        --*) ;;
        *) die "unexpected argument: $arg (see --help)" ;;
    esac
    case "$arg" in
        --monitoring-namespace | --production-namespace | --canary-namespace | \
            --production-release | --canary-release | --dashboard-label) ;;
        *) die "unknown option: $arg (see --help)" ;;
    esac
    if ((!given)); then
        [[ $# -ge 2 && "$2" != --* ]] || die "$arg needs a value (see --help)"
        value="$2"
        shift
    fi
    [[ -n "$value" ]] || die "$arg needs a value (see --help)"
    case "$arg" in
        --monitoring-namespace) monitoring_ns="$value" ;;
        --production-namespace) production_ns="$value" ;;
        --canary-namespace) canary_ns="$value" ;;
        --production-release) production_release="$value" ;;
        --canary-release) canary_release="$value" ;;
        --dashboard-label) [[ "$value" == ?*=* ]] || die "--dashboard-label takes KEY=VALUE"
                           dashboard_label="$value" ;;
    esac
    shift
done

read -ra KUBECTL <<<"${KUBECTL:-kubectl}"
command -v "${KUBECTL[0]}" >/dev/null || die "kubectl not found (set KUBECTL to its path)"
command -v jq >/dev/null || die "jq not found (Debian/Ubuntu: apt-get install jq)"

# The monitoring setup's dashboard, panel by panel: title|Grafana panel type, in its order.
SEED_PANELS='[
  "Worker Utilization|gauge", "Request Rate|timeseries", "Error Rate|timeseries",
  "Latency Comparison|timeseries", "Current Rate Limit|timeseries", "Upstream Errors|timeseries",
  "Concurrent Requests|gauge", "Token Throughput|timeseries", "Token Counting Duration|timeseries",
  "Rate Limit Adjustments|timeseries"]'
DASHBOARD_CONFIGMAP=zai-proxy-grafana-dashboard
DASHBOARD_UID=zai-proxy-prod-vs-canary
CANARY_ALERTS='["ZaiProxyCanaryHighErrorRate", "ZaiProxyCanaryHighLatency",
  "ZaiProxyCanaryCrashLooping", "ZaiProxyCanaryNotReady", "ZaiProxyCanaryDegradedVsProduction",
  "ZaiProxyCanarySlowerThanProduction", "ZaiProxyCanaryTokenCountingSlow",
  "ZaiProxyCanaryRateLimitAdjustingDown"]'
PRODUCTION_ALERTS='["ZaiProxyProductionHighErrorRate", "ZaiProxyProductionHighLatency",
  "ZaiProxyProductionZaiRateLimited", "ZaiProxyProductionAtCapacity", "ZaiProxyProductionNotReady",
  "ZaiProxyProductionCrashLooping", "ZaiProxyProductionQuotaBurn", "ZaiProxyProductionMetricsAbsent",
  "ZaiProxyProductionUpstreamAuthFailing"]'

# The chart's names: zai-proxy.fullname (the release name when it contains the chart name) and
# zai-proxy.monitoringName (<fullname>-<variant> unless the fullname already ends with it).
fullname() { if [[ "$1" == *zai-proxy* ]]; then echo "$1"; else echo "$1-zai-proxy"; fi; }
monitoring_name() { if [[ "$1" == *-"$2" ]]; then echo "$1"; else echo "$1-$2"; fi; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

# check NAME FUNCTION ARGS...: the function prints its problems and returns non-zero on failure.
check() {
    local name="$1"
    shift
    if "$@" >"$TMP/problems" 2>&1; then
        printf 'PASS  %s\n' "$name"
        passed=$((passed + 1))
    else
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      /' "$TMP/problems"
        failed=$((failed + 1))
    fi
}

# get KIND NAME NAMESPACE: the object as JSON on stdout, or kubectl's error and status 1.
get() {
    local ns_args=()
    [[ -n "$3" ]] && ns_args=(--namespace "$3")
    if ! "${KUBECTL[@]}" get "$1" "$2" "${ns_args[@]}" --output json 2>"$TMP/kubectl.err"; then
        sed 's/^/kubectl: /' "$TMP/kubectl.err"
        return 1
    fi
}

# problems JSON JQ-PROGRAM [jq args...]: prints the problems the program finds; 1 when any.
problems() {
    local json="$1" program="$2"
    shift 2
    local found
    found="$(jq -r "$@" "[$program] | .[]" <<<"$json")" || { echo "jq could not read the object"; return 1; }
    [[ -z "$found" ]] || { echo "$found"; return 1; }
}

check_namespace() {
    "${KUBECTL[@]}" get namespace "$1" --output name 2>&1 || return 1
}

check_servicemonitor() {
    local name="$1" variant="$2" namespace="$3" app="$4" json
    json="$(get servicemonitor "$name" "$monitoring_ns")" || { echo "$json"; return 1; }
    problems "$json" '
        (.spec.selector.matchLabels // {}) as $m
        | (if $m.app != $app then "selector app=\($m.app // "(none)"), expected app=\($app)" else empty end),
          (if $m.version != $variant then "selector version=\($m.version // "(none)"), expected version=\($variant)" else empty end),
          (if (.spec.namespaceSelector.matchNames // []) != [$namespace]
           then "namespaceSelector.matchNames is \(.spec.namespaceSelector.matchNames // [] | tojson), expected [\"\($namespace)\"]" else empty end),
          (if (.spec.endpoints // []) == [] then "no endpoints" else empty end),
          (.spec.endpoints // [] | .[]
           | (if .port != "http" then "endpoint port \(.port // "(none)" | tojson), expected \"http\" (the Service port name)" else empty end),
             (if (.path // "/metrics") != "/metrics" then "endpoint path \(.path), expected /metrics" else empty end),
             (if [.relabelings // [] | .[]
                  | select(.targetLabel == "deployment_variant"
                           and .sourceLabels == ["__meta_kubernetes_service_label_version"]
                           and ((.action // "replace") | ascii_downcase) == "replace")] == []
              then "endpoint \(.port // "?"): no relabeling of __meta_kubernetes_service_label_version into deployment_variant" else empty end),
             (.relabelings // [] | .[] | select(.targetLabel == "variant")
              | "endpoint \(.port // "?"): a relabeling targets `variant`, which the proxy exports itself (it would become exported_variant)"))
    ' --arg app "$app" --arg variant "$variant" --arg namespace "$namespace"
}

check_service() {
    local name="$1" namespace="$2" monitor="$3" variant="$4" service selector
    service="$(get service "$name" "$namespace")" || { echo "$service"; return 1; }
    # Compare with what the ServiceMonitor really selects; the chart's labels when it is missing.
    selector="$(get servicemonitor "$monitor" "$monitoring_ns" 2>/dev/null \
        | jq -c '.spec.selector.matchLabels // {}' 2>/dev/null)"
    [[ -n "$selector" ]] || selector="$(jq -nc --arg app "$name" --arg v "$variant" '{app: $app, version: $v}')"
    problems "$service" '
        (.metadata.labels // {}) as $labels
        | ($selector | to_entries[] | select($labels[.key] != .value)
           | "label \(.key)=\($labels[.key] // "(none)"), ServiceMonitor \($monitor) selects \(.key)=\(.value)"),
          (if [.spec.ports // [] | .[] | select(.name == "http")] == [] then "no port named http (the ServiceMonitor scrapes port http)" else empty end)
    ' --argjson selector "$selector" --arg monitor "$monitor"
}

check_rule() {
    local name="$1" group="$2" expected="$3" json
    json="$(get prometheusrule "$name" "$monitoring_ns")" || { echo "$json"; return 1; }
    problems "$json" '
        [.spec.groups // [] | .[] | select(.name == $group)] as $groups
        | if $groups == [] then "no group \($group) (groups: \([.spec.groups // [] | .[].name] | join(", ")))"
          else ([$groups[].rules // [] | .[] | select(.alert) | .alert]) as $alerts
               | ($expected - $alerts | .[] | "alert \(.) missing from group \($group)"),
                 ($groups[].rules // [] | .[] | select(.alert and ((.expr // "") | tostring | length) == 0)
                  | "alert \(.alert) has no expr")
          end
    ' --arg group "$group" --argjson expected "$expected"
}

check_dashboard_configmap() {
    local json key="${dashboard_label%%=*}" value="${dashboard_label#*=}"
    json="$(get configmap "$DASHBOARD_CONFIGMAP" "$monitoring_ns")" || { echo "$json"; return 1; }
    printf '%s' "$json" >"$TMP/configmap.json"
    problems "$json" '
        (if (.metadata.labels // {})[$key] != $value
         then "label \($key)=\((.metadata.labels // {})[$key] // "(none)"), the Grafana sidecar loads \($key)=\($value)" else empty end),
        (if ((.data // {}) | length) != 1 then "holds \((.data // {}) | length) data keys, expected one dashboard JSON" else empty end)
    ' --arg key "$key" --arg value "$value"
}

# The dashboard JSON of the ConfigMap read by check_dashboard_configmap, into $TMP/dashboard.json.
check_dashboard_json() {
    [[ -s "$TMP/configmap.json" ]] || { echo "no dashboard ConfigMap to read"; return 1; }
    jq -r '.data // {} | to_entries[0].value // ""' "$TMP/configmap.json" >"$TMP/dashboard.json"
    [[ -s "$TMP/dashboard.json" ]] || { echo "the ConfigMap holds no dashboard"; return 1; }
    if ! jq -e 'type == "object"' "$TMP/dashboard.json" >/dev/null 2>"$TMP/jq.err"; then
        echo "not valid JSON: $(head -c 300 "$TMP/jq.err")"
        rm -f "$TMP/dashboard.json"
        return 1
    fi
    problems "$(cat "$TMP/dashboard.json")" '
        (if .uid != $uid then "uid \(.uid // "(none)" | tojson), expected \($uid)" else empty end),
        (if (.panels | type) != "array" then "no panels list" else empty end)
    ' --arg uid "$DASHBOARD_UID"
}

check_dashboard_panels() {
    [[ -s "$TMP/dashboard.json" ]] || { echo "no valid dashboard JSON to read"; return 1; }
    problems "$(cat "$TMP/dashboard.json")" '
        [.panels // [] | .[] | if .type == "row" then (.panels // [])[] else . end] as $panels
        | ($panels[:($seed | length)] | map("\(.title)|\(.type)")) as $seen
        | (range($seed | length) as $i
           | select($seen[$i] != $seed[$i])
           | "panel \($i + 1) is \($seen[$i] // "missing" | tojson), expected \($seed[$i] | tojson)"),
          ($panels[:($seed | length)][]
           | select([.targets // [] | .[] | select((.expr // "") | contains("deployment_variant"))] == [])
           | "panel \(.title | tojson) has no query on deployment_variant")
    ' --argjson seed "$SEED_PANELS"
}

production_full="$(fullname "$production_release")"
canary_full="$(fullname "$canary_release")"
production_monitor="$(monitoring_name "$production_full" production)"
canary_monitor="$(monitoring_name "$canary_full" canary)"

check "namespace $monitoring_ns exists" check_namespace "$monitoring_ns"
check "ServiceMonitor $monitoring_ns/$production_monitor selects app=$production_full,version=production in $production_ns and relabels version into deployment_variant" \
    check_servicemonitor "$production_monitor" production "$production_ns" "$production_full"
check "ServiceMonitor $monitoring_ns/$canary_monitor selects app=$canary_full,version=canary in $canary_ns and relabels version into deployment_variant" \
    check_servicemonitor "$canary_monitor" canary "$canary_ns" "$canary_full"
check "Service $production_ns/$production_full carries the labels ServiceMonitor $production_monitor selects, port http" \
    check_service "$production_full" "$production_ns" "$production_monitor" production
check "Service $canary_ns/$canary_full carries the labels ServiceMonitor $canary_monitor selects, port http" \
    check_service "$canary_full" "$canary_ns" "$canary_monitor" canary
check "PrometheusRule $monitoring_ns/$canary_monitor-alerts: group zai_proxy_canary_alerts with the eight canary alerts of the monitoring setup" \
    check_rule "$canary_monitor-alerts" zai_proxy_canary_alerts "$CANARY_ALERTS"
check "PrometheusRule $monitoring_ns/$production_monitor-alerts: group zai_proxy_production_alerts with production's alerts" \
    check_rule "$production_monitor-alerts" zai_proxy_production_alerts "$PRODUCTION_ALERTS"
check "ConfigMap $monitoring_ns/$DASHBOARD_CONFIGMAP exists with the Grafana sidecar label $dashboard_label" \
    check_dashboard_configmap
check "dashboard JSON in $DASHBOARD_CONFIGMAP is valid (uid $DASHBOARD_UID)" check_dashboard_json
check "dashboard has the ten panels of the monitoring setup: titles and types in order, each on deployment_variant" \
    check_dashboard_panels

echo "verify-monitoring: $passed passed, $failed failed"
((failed == 0))
