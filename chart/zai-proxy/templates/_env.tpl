{{/*
The proxy container's environment and secret files. Every env var here is a row of the image's
table of settings (image/zai_proxy/settings.py; tests/test_settings.py checks which value renders
which variable); keys are mounted as files (`*_FILE`), so they never show
in `kubectl describe` and never sit in the pod spec.
*/}}

{{/* zai-proxy.secretsDir: where the key files are mounted. */}}
{{- define "zai-proxy.secretsDir" -}}
/var/run/secrets/zai-proxy
{{- end }}

{{/* zai-proxy.configChecksum: hash of the rendered Secret and of the settings, for the checksum/config pod annotation. */}}
{{- define "zai-proxy.configChecksum" -}}
{{- $secret := include (print $.Template.BasePath "/secret.yaml") . }}
{{- $settings := dict "config" .Values.config "rateLimit" .Values.rateLimit "tokenCounting" .Values.tokenCounting "variant" .Values.variant }}
{{- printf "%s\n%s" $secret (toJson $settings) | sha256sum }}
{{- end }}

{{/* zai-proxy.probeTimings: the timing fields of a probe from its values block. */}}
{{- define "zai-proxy.probeTimings" -}}
initialDelaySeconds: {{ .initialDelaySeconds }}
periodSeconds: {{ .periodSeconds }}
timeoutSeconds: {{ .timeoutSeconds }}
failureThreshold: {{ .failureThreshold }}
successThreshold: {{ .successThreshold }}
{{- end }}

{{/* zai-proxy.secretSources: projected-volume sources, one file per key, from the chart's Secret or an existing one. */}}
{{- define "zai-proxy.secretSources" -}}
{{- $own := include "zai-proxy.secretName" . }}
{{- $v := .Values -}}
- secret:
    name: {{ default $own $v.zai.existingSecret }}
    items:
      - key: {{ ternary $v.zai.existingSecretKey "zai-api-key" (ne $v.zai.existingSecret "") }}
        path: zai-api-key
{{- if or $v.proxyApiKeys.keys $v.proxyApiKeys.existingSecret }}
- secret:
    name: {{ default $own $v.proxyApiKeys.existingSecret }}
    items:
      - key: {{ ternary $v.proxyApiKeys.existingSecretKey "proxy-api-keys" (ne $v.proxyApiKeys.existingSecret "") }}
        path: proxy-api-keys
{{- end }}
{{- if or $v.adminToken.value $v.adminToken.existingSecret }}
- secret:
    name: {{ default $own $v.adminToken.existingSecret }}
    items:
      - key: {{ ternary $v.adminToken.existingSecretKey "admin-token" (ne $v.adminToken.existingSecret "") }}
        path: admin-token
{{- end }}
{{- end }}

{{/* zai-proxy.env: the proxy's env vars from values. */}}
{{- define "zai-proxy.env" -}}
{{- $v := .Values -}}
{{- $dir := include "zai-proxy.secretsDir" . -}}
- name: DEPLOYMENT_VARIANT
  value: {{ $v.variant | quote }}
- name: TOKEN_COUNTING_ENABLED
  value: {{ $v.tokenCounting.enabled | quote }}
- name: BIND_HOST
  value: {{ $v.config.bindHost | quote }}
- name: PORT
  value: {{ $v.config.port | quote }}
- name: ZAI_BASE_URL
  value: {{ $v.zai.baseUrl | trimSuffix "/" | quote }}
- name: ZAI_OPENAI_PATH
  value: {{ $v.zai.openaiPath | quote }}
- name: ZAI_ANTHROPIC_PATH
  value: {{ $v.zai.anthropicPath | quote }}
- name: ZAI_API_KEY_FILE
  value: {{ printf "%s/zai-api-key" $dir | quote }}
{{- if or $v.proxyApiKeys.keys $v.proxyApiKeys.existingSecret }}
- name: PROXY_API_KEYS_FILE
  value: {{ printf "%s/proxy-api-keys" $dir | quote }}
{{- end }}
{{- if or $v.adminToken.value $v.adminToken.existingSecret }}
- name: ADMIN_TOKEN_FILE
  value: {{ printf "%s/admin-token" $dir | quote }}
{{- end }}
- name: MAX_WORKERS
  value: {{ $v.config.maxWorkers | quote }}
- name: WEB_CONCURRENCY
  value: {{ $v.config.webConcurrency | quote }}
- name: MAX_REQUEST_BYTES
  value: {{ int64 $v.config.maxRequestBytes | quote }}
- name: CLIENT_HEADER_TIMEOUT
  value: {{ $v.config.clientHeaderTimeout | quote }}
- name: CLIENT_BODY_TIMEOUT
  value: {{ $v.config.clientBodyTimeout | quote }}
- name: CLIENT_WRITE_TIMEOUT
  value: {{ $v.config.clientWriteTimeout | quote }}
- name: UPSTREAM_CONNECT_TIMEOUT
  value: {{ $v.config.upstreamConnectTimeout | quote }}
- name: UPSTREAM_READ_TIMEOUT
  value: {{ $v.config.upstreamReadTimeout | quote }}
- name: UPSTREAM_TOTAL_TIMEOUT
  value: {{ $v.config.upstreamTotalTimeout | quote }}
- name: GRACEFUL_TIMEOUT
  value: {{ $v.config.gracefulTimeout | quote }}
- name: LOG_LEVEL
  value: {{ $v.config.logLevel | quote }}
{{- with $v.config.modelLabels }}
- name: MODEL_LABELS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $v.config.trustedProxyCidrs }}
- name: TRUSTED_PROXY_CIDRS
  value: {{ join "," . | quote }}
{{- end }}
- name: MAX_RETRIES
  value: {{ $v.config.maxRetries | quote }}
- name: RETRY_BACKOFF_BASE
  value: {{ $v.config.retryBackoffBase | quote }}
- name: RATE_LIMIT_ENABLED
  value: {{ $v.rateLimit.enabled | quote }}
{{- if $v.rateLimit.existingSecret }}
- name: RATE_LIMIT_STORAGE_URI
  valueFrom:
    secretKeyRef:
      name: {{ $v.rateLimit.existingSecret }}
      key: {{ $v.rateLimit.existingSecretKey }}
{{- else }}
- name: RATE_LIMIT_STORAGE_URI
  value: {{ $v.rateLimit.storageUri | quote }}
{{- end }}
- name: RATE_LIMIT_INITIAL
  value: {{ $v.rateLimit.initial | quote }}
- name: RATE_LIMIT_MIN
  value: {{ $v.rateLimit.min | quote }}
- name: RATE_LIMIT_MAX
  value: {{ $v.rateLimit.max | quote }}
- name: RATE_LIMIT_CEILING_ALPHA
  value: {{ $v.rateLimit.ceilingAlpha | quote }}
- name: RATE_LIMIT_HOLD_MARGIN
  value: {{ $v.rateLimit.holdMargin | quote }}
- name: RATE_LIMIT_PROBE_INTERVAL
  value: {{ $v.rateLimit.probeInterval | quote }}
- name: RATE_LIMIT_WINDOW
  value: {{ $v.rateLimit.window | quote }}
- name: RATE_LIMIT_STATE_FILE
  value: {{ $v.rateLimit.stateFile | quote }}
- name: RATE_LIMIT_STATE_MAX_AGE
  value: {{ $v.rateLimit.stateMaxAge | quote }}
- name: RATE_LIMIT_MAX_WAIT
  value: {{ $v.rateLimit.maxWait | quote }}
- name: TOKENIZER_ENCODING
  value: {{ $v.tokenCounting.encoding | quote }}
- name: TOKEN_COUNT_MAX_CHARS
  value: {{ int64 $v.tokenCounting.maxChars | quote }}
{{- with $v.tokenCounting.prices }}
- name: TOKEN_PRICES
  value: {{ toJson . | quote }}
{{- end }}
- name: QUOTA_POLL_ENABLED
  value: {{ $v.config.quota.pollEnabled | quote }}
- name: QUOTA_POLL_INTERVAL
  value: {{ $v.config.quota.pollInterval | quote }}
- name: QUOTA_POLL_TIMEOUT
  value: {{ $v.config.quota.pollTimeout | quote }}
- name: QUOTA_STALE_AFTER
  value: {{ $v.config.quota.staleAfter | quote }}
{{- with $v.config.quota.baseUrl }}
- name: ZAI_QUOTA_BASE_URL
  value: {{ . | trimSuffix "/" | quote }}
{{- end }}
- name: QUOTA_ENFORCEMENT_ENABLED
  value: {{ $v.config.quota.enforcementEnabled | quote }}
{{- end }}
