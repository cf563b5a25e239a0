{{/*
Chart name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "wsticket.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. If the release name already contains the chart name
it is used as is.
*/}}
{{- define "wsticket.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "wsticket.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels.
*/}}
{{- define "wsticket.labels" -}}
helm.sh/chart: {{ include "wsticket.chart" . }}
{{ include "wsticket.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: wsticket
{{- end }}

{{/*
Selector labels: never change them between releases (Deployment selectors
are immutable).
*/}}
{{- define "wsticket.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wsticket.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "wsticket.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "wsticket.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "wsticket.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Where the Secret with ticket secrets and client key hashes is mounted. */}}
{{- define "wsticket.secretDir" -}}/run/secrets/wsticket{{- end }}

{{/* True (non-empty) when a Redis URL is configured one way or the other. */}}
{{- define "wsticket.redisEnabled" -}}
{{- if or .Values.redis.url .Values.redis.existingSecret }}true{{ end }}
{{- end }}

{{/* True (non-empty) when the chart renders auth.jwt.hs_secret into its Secret. */}}
{{- define "wsticket.jwtHsSecretInline" -}}
{{- if and .Values.auth.jwt (hasKey .Values.auth.jwt "hs_secret") }}true{{ end }}
{{- end }}

{{/*
True (non-empty) when the chart's own Secret has anything in it: ticket
secrets and key hashes (unless existingSecret is used), the Redis URL, or an
inline JWT HMAC secret.
*/}}
{{- define "wsticket.ownSecretNeeded" -}}
{{- if or .Values.redis.url (include "wsticket.jwtHsSecretInline" .) (and (not .Values.existingSecret) (or .Values.ticketSecrets .Values.clients)) }}true{{ end }}
{{- end }}

{{/* Name of the Secret mounted at wsticket.secretDir, or empty for none. */}}
{{- define "wsticket.mountedSecretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else if include "wsticket.ownSecretNeeded" . }}
{{- include "wsticket.fullname" . }}
{{- end }}
{{- end }}

{{/*
Render a flat map as TOML key/value lines. Values are scalars or lists of
scalars; JSON encoding of those is valid TOML (strings, numbers, booleans,
arrays). Null values are skipped.
*/}}
{{- define "wsticket.tomlPairs" -}}
{{- range $key, $value := . }}
{{- if not (kindIs "invalid" $value) }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Checks that values alone can't express in the schema. Each failure names the
values to change.
*/}}
{{- define "wsticket.validate" -}}
{{- $v := .Values }}
{{- $redis := include "wsticket.redisEnabled" . }}
{{- if and $v.redis.url $v.redis.existingSecret }}
{{- fail "wsticket: set only one of redis.url and redis.existingSecret" }}
{{- end }}
{{- if and (not $redis) (or (gt (int $v.replicaCount) 1) $v.autoscaling.enabled) }}
{{- fail "wsticket: the in-memory store serves a single replica: with replicaCount > 1 or autoscaling.enabled, set redis.url or redis.existingSecret (or use replicaCount: 1 and autoscaling.enabled: false)" }}
{{- end }}
{{- if and $redis (not $v.ticketSecrets) }}
{{- fail "wsticket: ticket secrets are required with Redis: set ticketSecrets (a list of {id} with existingSecret, or {id, secret})" }}
{{- end }}
{{- $ids := dict }}
{{- range $i, $s := $v.ticketSecrets }}
{{- if hasKey $ids $s.id }}
{{- fail (printf "wsticket: ticketSecrets[%d].id %q is used twice" $i $s.id) }}
{{- end }}
{{- $_ := set $ids $s.id true }}
{{- if and $v.existingSecret $s.secret }}
{{- fail (printf "wsticket: ticketSecrets[%d].secret is set, but existingSecret %q is used: put it in that Secret under the key ticket-secret-%s, or set existingSecret to \"\"" $i $v.existingSecret $s.id) }}
{{- end }}
{{- if and (not $v.existingSecret) (not $s.secret) }}
{{- fail (printf "wsticket: ticketSecrets[%d].secret is required when existingSecret is empty" $i) }}
{{- end }}
{{- end }}
{{- $names := dict }}
{{- range $i, $c := $v.clients }}
{{- if hasKey $names $c.name }}
{{- fail (printf "wsticket: clients[%d].name %q is used twice" $i $c.name) }}
{{- end }}
{{- $_ := set $names $c.name true }}
{{- if and $v.existingSecret $c.keySha256 }}
{{- fail (printf "wsticket: clients[%d].keySha256 is set, but existingSecret %q is used: put it in that Secret under the key client-%s-key-sha256, or set existingSecret to \"\"" $i $v.existingSecret $c.name) }}
{{- end }}
{{- if and (not $v.existingSecret) (not $c.keySha256) }}
{{- fail (printf "wsticket: clients[%d].keySha256 is required when existingSecret is empty" $i) }}
{{- end }}
{{- end }}
{{- if and $v.auth.jwt (hasKey $v.auth.jwt "hs_secret") (hasKey $v.auth.jwt "hs_secret_file") }}
{{- fail "wsticket: set only one of auth.jwt.hs_secret and auth.jwt.hs_secret_file" }}
{{- end }}
{{- if and $v.existingSecret (include "wsticket.jwtHsSecretInline" .) }}
{{- fail (printf "wsticket: auth.jwt.hs_secret is set, but existingSecret %q is used: put the HMAC secret in that Secret (e.g. under the key jwt-hs-secret) and set auth.jwt.hs_secret_file: /run/secrets/wsticket/jwt-hs-secret" $v.existingSecret) }}
{{- end }}
{{- $grace := 10 }}
{{- if and (hasKey $v.config "shutdown_grace_secs") (not (kindIs "invalid" $v.config.shutdown_grace_secs)) }}
{{- $grace = int $v.config.shutdown_grace_secs }}
{{- end }}
{{- $delay := 0 }}
{{- if and (hasKey $v.config "shutdown_delay_secs") (not (kindIs "invalid" $v.config.shutdown_delay_secs)) }}
{{- $delay = int $v.config.shutdown_delay_secs }}
{{- end }}
{{- if ge (add $delay $grace) (int $v.terminationGracePeriodSeconds) }}
{{- fail (printf "wsticket: terminationGracePeriodSeconds (%d) must exceed config.shutdown_delay_secs + config.shutdown_grace_secs (%d + %d), or Kubernetes kills pods that are still draining" (int $v.terminationGracePeriodSeconds) $delay $grace) }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail "wsticket: autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
