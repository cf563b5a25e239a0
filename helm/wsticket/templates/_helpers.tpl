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

{{/* Where the Secret with the Redis password is mounted when it is not the one at wsticket.secretDir. */}}
{{- define "wsticket.redisSecretDir" -}}/run/secrets/wsticket-redis{{- end }}

{{/* The Redis topology: single, cluster or sentinel. */}}
{{- define "wsticket.redisMode" -}}
{{- .Values.redis.mode | default "single" }}
{{- end }}

{{/*
True (non-empty) when the store is Redis: a Cluster, Sentinel, or a single
Redis URL configured one way or the other.
*/}}
{{- define "wsticket.redisEnabled" -}}
{{- if ne (include "wsticket.redisMode" .) "single" }}true
{{- else if or .Values.redis.url .Values.redis.existingSecret }}true
{{- end }}
{{- end }}

{{/*
Cluster and Sentinel: name of the Secret holding the Redis password (the
chart's own for redis.password, else redis.existingSecret), or empty for no
password. Always empty for a single Redis: its password is in the URL.
*/}}
{{- define "wsticket.redisPasswordSecret" -}}
{{- if ne (include "wsticket.redisMode" .) "single" }}
{{- if .Values.redis.password }}
{{- include "wsticket.fullname" . }}
{{- else if and .Values.redis.existingSecret .Values.redis.existingSecretPasswordKey }}
{{- .Values.redis.existingSecret }}
{{- end }}
{{- end }}
{{- end }}

{{/* Key of the Redis password in wsticket.redisPasswordSecret. */}}
{{- define "wsticket.redisPasswordKey" -}}
{{- if .Values.redis.password }}redis-password{{ else }}{{ .Values.redis.existingSecretPasswordKey }}{{ end }}
{{- end }}

{{/*
True (non-empty) when the Redis password's Secret is not the one mounted at
wsticket.secretDir, so the deployment mounts its one key at
wsticket.redisSecretDir.
*/}}
{{- define "wsticket.redisPasswordMountedApart" -}}
{{- $name := include "wsticket.redisPasswordSecret" . }}
{{- if and $name (ne $name (include "wsticket.mountedSecretName" .)) }}true{{ end }}
{{- end }}

{{/* Path of the Redis password file in the pod, or empty for none. */}}
{{- define "wsticket.redisPasswordFile" -}}
{{- if include "wsticket.redisPasswordMountedApart" . }}
{{- printf "%s/password" (include "wsticket.redisSecretDir" .) }}
{{- else if include "wsticket.redisPasswordSecret" . }}
{{- printf "%s/%s" (include "wsticket.secretDir" .) (include "wsticket.redisPasswordKey" .) }}
{{- end }}
{{- end }}

{{/*
Sentinel with redis.sentinel.authSentinels: key of the sentinels' own
password in wsticket.redisPasswordSecret when it is not the master's
(redis.sentinel.sentinelPasswordKey, set and different), else empty: the
sentinels then share the master's password file.
*/}}
{{- define "wsticket.sentinelPasswordKey" -}}
{{- $s := .Values.redis.sentinel | default dict }}
{{- if and (eq (include "wsticket.redisMode" .) "sentinel") $s.authSentinels $s.sentinelPasswordKey (include "wsticket.redisPasswordSecret" .) }}
{{- if ne $s.sentinelPasswordKey (include "wsticket.redisPasswordKey" .) }}{{ $s.sentinelPasswordKey }}{{ end }}
{{- end }}
{{- end }}

{{/*
Path of the sentinels' password file in the pod (sentinel_password_file), or
empty for none: only with redis.mode sentinel and redis.sentinel.authSentinels.
The master's password file, or the file of
redis.sentinel.sentinelPasswordKey from the same Secret, mounted alike.
*/}}
{{- define "wsticket.sentinelPasswordFile" -}}
{{- $s := .Values.redis.sentinel | default dict }}
{{- if and (eq (include "wsticket.redisMode" .) "sentinel") $s.authSentinels }}
{{- $key := include "wsticket.sentinelPasswordKey" . }}
{{- if not $key }}
{{- include "wsticket.redisPasswordFile" . }}
{{- else if include "wsticket.redisPasswordMountedApart" . }}
{{- printf "%s/sentinel-password" (include "wsticket.redisSecretDir" .) }}
{{- else }}
{{- printf "%s/%s" (include "wsticket.secretDir" .) $key }}
{{- end }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the chart renders auth.jwt.hs_secret into its Secret. */}}
{{- define "wsticket.jwtHsSecretInline" -}}
{{- if and .Values.auth.jwt (hasKey .Values.auth.jwt "hs_secret") }}true{{ end }}
{{- end }}

{{/*
True (non-empty) when the chart's own Secret has anything in it: ticket
secrets and key hashes (unless existingSecret is used), the Redis URL or
password, or an inline JWT HMAC secret.
*/}}
{{- define "wsticket.ownSecretNeeded" -}}
{{- if or .Values.redis.url .Values.redis.password (include "wsticket.jwtHsSecretInline" .) (and (not .Values.existingSecret) (or .Values.ticketSecrets .Values.clients)) }}true{{ end }}
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
{{- include "wsticket.validateRedis" . }}
{{- if and (not $redis) (or (gt (int $v.replicaCount) 1) $v.autoscaling.enabled) }}
{{- fail "wsticket: the in-memory store serves a single replica: with replicaCount > 1 or autoscaling.enabled, set redis.url or redis.existingSecret, or redis.mode cluster or sentinel (or use replicaCount: 1 and autoscaling.enabled: false)" }}
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
{{- if and $s.secret (not (regexMatch "^[A-Za-z0-9_-]{43}$" (toString $s.secret))) }}
{{- fail (printf "wsticket: ticketSecrets[%d].secret must be base64url of 32 bytes, unpadded: 43 characters from A-Z, a-z, 0-9, - and _ (as printed by wsticket keygen)" $i) }}
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
{{- if and (include "wsticket.jwtHsSecretInline" .) (lt (len (toString $v.auth.jwt.hs_secret)) 32) }}
{{- fail "wsticket: auth.jwt.hs_secret must be at least 32 bytes long (wsticket refuses a shorter HMAC secret)" }}
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

{{/*
The Redis topology: exactly one of redis.url / redis.existingSecret (single),
redis.cluster and redis.sentinel, as redis.mode says; every URL in the values
redis:// or rediss://, and those that end up in the ConfigMap (cluster,
sentinel) without a password and each listed once.
*/}}
{{- define "wsticket.validateRedis" -}}
{{- $r := .Values.redis }}
{{- $mode := include "wsticket.redisMode" . }}
{{- $cluster := $r.cluster | default dict }}
{{- $sentinel := $r.sentinel | default dict }}
{{- $given := dict "single" (ternary "redis.url" "" (not (empty $r.url))) "cluster" (ternary "redis.cluster.urls" "" (not (empty $cluster.urls))) "sentinel" (ternary "redis.sentinel" "" (or (not (empty $sentinel.urls)) (not (empty $sentinel.masterName)) (not (empty $sentinel.authSentinels)) (not (empty $sentinel.sentinelPasswordKey)))) }}
{{- range $other := list "single" "cluster" "sentinel" }}
{{- if and (ne $other $mode) (get $given $other) }}
{{- fail (printf "wsticket: set exactly one Redis topology: redis.mode is %s, but %s (redis.mode %s) is set too; remove it, or change redis.mode" $mode (get $given $other) $other) }}
{{- end }}
{{- end }}
{{- if eq $mode "single" }}
{{- if and $r.url $r.existingSecret }}
{{- fail "wsticket: set only one of redis.url and redis.existingSecret" }}
{{- end }}
{{- if $r.password }}
{{- fail "wsticket: redis.password is for redis.mode cluster and sentinel; a single Redis takes its password in its URL (redis.url, or the key redis.existingSecretKey of redis.existingSecret)" }}
{{- end }}
{{- if $r.url }}
{{- include "wsticket.validateRedisUrl" (dict "field" "redis.url" "url" $r.url "password" true) }}
{{- end }}
{{- else }}
{{- $field := ternary "redis.cluster.urls" "redis.sentinel.urls" (eq $mode "cluster") }}
{{- $urls := ternary $cluster.urls $sentinel.urls (eq $mode "cluster") | default list }}
{{- if not $urls }}
{{- fail (printf "wsticket: redis.mode is %s: list at least one %s in %s" $mode (ternary "node" "sentinel" (eq $mode "cluster")) $field) }}
{{- end }}
{{- $schemes := dict }}
{{- $seen := dict }}
{{- range $i, $u := $urls }}
{{- $u = toString $u }}
{{- include "wsticket.validateRedisUrl" (dict "field" (printf "%s[%d]" $field $i) "url" $u "password" false) }}
{{- if hasKey $seen $u }}
{{- fail (printf "wsticket: %s[%d] repeats %s[%d]; list each URL once" $field $i $field (get $seen $u)) }}
{{- end }}
{{- $_ := set $seen $u $i }}
{{- $_ := set $schemes (regexFind "^rediss?" $u) true }}
{{- end }}
{{- if gt (len $schemes) 1 }}
{{- fail (printf "wsticket: %s mixes redis:// and rediss://; use one scheme for all" $field) }}
{{- end }}
{{- if and (eq $mode "sentinel") (not $sentinel.masterName) }}
{{- fail "wsticket: redis.mode is sentinel: set redis.sentinel.masterName (the name the sentinels monitor the master under)" }}
{{- end }}
{{- if and $r.password $r.existingSecret }}
{{- fail "wsticket: set only one of redis.password and redis.existingSecret" }}
{{- end }}
{{- if eq $mode "sentinel" }}
{{- include "wsticket.validateSentinelAuth" . }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if and (kindIs "map" .) (eq (get . "name" | toString) "WSTICKET_REDIS_URL") }}
{{- fail (printf "wsticket: extraEnv sets WSTICKET_REDIS_URL, which would override redis.mode %s with a single Redis; remove it" $mode) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
redis.mode sentinel: the sentinels' password (redis.sentinel.authSentinels,
redis.sentinel.sentinelPasswordKey) comes from the Secret of the master's
password, so it needs one. The messages name values, never a password.
*/}}
{{- define "wsticket.validateSentinelAuth" -}}
{{- $r := .Values.redis }}
{{- $s := $r.sentinel | default dict }}
{{- if and $s.sentinelPasswordKey (not $s.authSentinels) }}
{{- fail "wsticket: redis.sentinel.sentinelPasswordKey is set, but redis.sentinel.authSentinels is false: set authSentinels: true for sentinels that require a password, or empty sentinelPasswordKey" }}
{{- end }}
{{- if $s.authSentinels }}
{{- if not (include "wsticket.redisPasswordSecret" .) }}
{{- fail "wsticket: redis.sentinel.authSentinels is true, but no Redis password is configured: the sentinels' password comes from the Secret of the master's, so set redis.existingSecret and redis.existingSecretPasswordKey (or redis.password), or set authSentinels: false" }}
{{- end }}
{{- if and $s.sentinelPasswordKey $r.password }}
{{- fail "wsticket: redis.sentinel.sentinelPasswordKey names a key of redis.existingSecret, but redis.password is used: with redis.password the sentinels share it (leave sentinelPasswordKey empty), or put both passwords in redis.existingSecret" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Fails unless a Redis URL from the values starts with redis:// or rediss://
and a host; with "password" false, also when it has a password in it. Takes
a dict: "field" (the value's name in the messages, e.g. redis.url),
"url", "password" (true: the URL goes into a Secret, so a password is
fine). The messages name the field, never the URL, which may hold a
password; for the same reason the schema puts no pattern on these values.
*/}}
{{- define "wsticket.validateRedisUrl" -}}
{{- $u := toString .url }}
{{- if not (regexMatch "^rediss?://." $u) }}
{{- fail (printf "wsticket: %s must start with redis:// or rediss://, followed by the host" .field) }}
{{- end }}
{{- if not .password }}
{{- $authority := regexFind "^[^/?#]*" (regexReplaceAll "^rediss?://" $u "") }}
{{- if and (contains "@" $authority) (contains ":" (regexReplaceAll "@[^@]*$" $authority "")) }}
{{- fail (printf "wsticket: %s has a password in it, and these URLs are written into the ConfigMap in plain text: remove it from the URL, and put it in the Secret redis.existingSecret under the key redis.existingSecretPasswordKey (or set redis.password, which the chart keeps in its own Secret)" .field) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A Kubernetes memory quantity ("128Mi", "1G", "134217728") in bytes. Only
whole numbers: a fraction ("0.5Gi") fails with a message saying so.
*/}}
{{- define "wsticket.quantityBytes" -}}
{{- $q := toString . -}}
{{- $n := $q -}}
{{- $mul := 1 -}}
{{- range $suffix, $m := dict "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 }}
{{- if hasSuffix $suffix $q }}{{ $n = trimSuffix $suffix $q }}{{ $mul = $m }}{{ end }}
{{- end }}
{{- if not (regexMatch "^[0-9]+$" $n) }}
{{- fail (printf "wsticket: resources.limits.memory %q: give a whole number, with Ki, Mi, Gi, Ti, k, M, G or T" $q) }}
{{- end }}
{{- mul (int64 $n) $mul }}
{{- end }}
