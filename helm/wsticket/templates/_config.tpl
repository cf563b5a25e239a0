{{/*
wsticket.toml, rendered from values. Secrets are never inline: they are files
in the mounted Secret (secret_file, key_sha256_file, hs_secret_file, and the
Redis password of a Cluster or Sentinel, and of the sentinels themselves), and
a single Redis URL comes from the environment (WSTICKET_REDIS_URL).
*/}}
{{- define "wsticket.toml" -}}
{{- $dir := include "wsticket.secretDir" . -}}
{{- $cfg := .Values.config -}}
{{- $mode := include "wsticket.redisMode" . -}}
{{- $password := include "wsticket.redisPasswordFile" . -}}
{{- $sentinelPassword := include "wsticket.sentinelPasswordFile" . -}}
# Rendered by the wsticket Helm chart ({{ include "wsticket.chart" . }}).
# Secrets are files under {{ $dir }}
{{- if eq $mode "single" }}{{ if include "wsticket.redisEnabled" . }}; the Redis URL is WSTICKET_REDIS_URL{{ end }}.
{{- else if $password }}; the Redis password is {{ $password }}
{{- if eq $mode "sentinel" }}{{ if not $sentinelPassword }} (the sentinels have none){{ else if ne $sentinelPassword $password }} (the sentinels' is {{ $sentinelPassword }}){{ else }} (the sentinels' too){{ end }}{{ end }}.
{{- else }}; Redis has no password.
{{- end }}
listen = {{ printf "0.0.0.0:%d" (int .Values.containerPorts.http) | toJson }}
admin_listen = {{ printf "0.0.0.0:%d" (int .Values.containerPorts.metrics) | toJson }}
{{- range $key, $value := $cfg }}
{{- if and (not (kindIs "map" $value)) (not (kindIs "invalid" $value)) }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}

[store]
{{- include "wsticket.tomlPairs" ($cfg.store | default dict) }}
{{- if and (not (include "wsticket.redisEnabled" .)) (not (hasKey ($cfg.store | default dict) "memory_max_bytes")) }}
{{- with (.Values.resources.limits | default dict).memory }}
# Half of resources.limits.memory: the rest is the process itself.
memory_max_bytes = {{ div (include "wsticket.quantityBytes" .) 2 }}
{{- end }}
{{- end }}
{{- if eq $mode "cluster" }}
cluster_urls = {{ toJson .Values.redis.cluster.urls }}
{{- with $password }}
cluster_password_file = {{ toJson . }}
{{- end }}
{{- else if eq $mode "sentinel" }}

[store.sentinel]
master_name = {{ toJson .Values.redis.sentinel.masterName }}
urls = {{ toJson .Values.redis.sentinel.urls }}
db = {{ int (.Values.redis.sentinel.db | default 0) }}
{{- with $password }}
master_password_file = {{ toJson . }}
{{- end }}
{{- with $sentinelPassword }}
sentinel_password_file = {{ toJson . }}
{{- end }}
{{- end }}

[tickets]
{{- include "wsticket.tomlPairs" ($cfg.tickets | default dict) }}
{{- with .Values.ticketSecrets }}
secrets = [
{{- range . }}
  { id = {{ toJson .id }}, secret_file = {{ printf "%s/ticket-secret-%s" $dir .id | toJson }} },
{{- end }}
]
{{- end }}
{{- with $cfg.limits }}

[limits]
{{- include "wsticket.tomlPairs" . }}
{{- end }}
{{- with $cfg.events }}

[events]
{{- include "wsticket.tomlPairs" . }}
{{- end }}
{{- range .Values.clients }}

[[clients]]
name = {{ toJson .name }}
key_sha256_file = {{ printf "%s/client-%s-key-sha256" $dir .name | toJson }}
can = {{ toJson .can }}
{{- if hasKey . "audiences" }}
audiences = {{ toJson .audiences }}
{{- end }}
{{- end }}
{{- with .Values.auth.jwt }}

[auth.jwt]
{{- include "wsticket.tomlPairs" (omit . "hs_secret") }}
{{- if hasKey . "hs_secret" }}
hs_secret_file = {{ printf "%s/jwt-hs-secret" $dir | toJson }}
{{- end }}
{{- end }}
{{- with .Values.auth.forward }}

[auth.forward]
{{- include "wsticket.tomlPairs" . }}
{{- end }}
{{- end }}
