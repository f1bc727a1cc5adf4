{{/*
Names, labels and the per-service facts every template shares. The facts (ports, databases,
who calls whom) live in calsync.topology so that Services, probes, env and NetworkPolicies
are all derived from one table and cannot disagree.
*/}}

{{- define "calsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "calsync.fullname" -}}
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

{{/* Objects of one service are named <fullname>-<service>. Takes (dict "root" $ "name" "identity"). */}}
{{- define "calsync.componentName" -}}
{{- printf "%s-%s" (include "calsync.fullname" .root | trunc 45 | trimSuffix "-") .name }}
{{- end }}

{{- define "calsync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "calsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: calsync
{{- end }}

{{- define "calsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "calsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of one service. Takes (dict "root" $ "name" ...). */}}
{{- define "calsync.componentLabels" -}}
{{ include "calsync.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Selects every pod of one service: its servers and its migration pods. */}}
{{- define "calsync.componentSelector" -}}
{{ include "calsync.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* Selects only the serving pods (Service, PDB, Deployment), never a migration Job's pod. */}}
{{- define "calsync.serverSelector" -}}
{{ include "calsync.componentSelector" . }}
calsync.io/role: server
{{- end }}

{{/*
Ports and wiring of every service. database: owns a Postgres schema (migrations); nats: talks to
JetStream; sealing: seals secrets at rest; calendly: calls Calendly (or the simulator); calls: gRPC
services it calls; portVariable: the variable naming an HTTP server's port; healthPath: the one
health route of a server without /healthz and /readyz; dev: only deployed with dev.enabled;
secretPolicy: refuses published or typed secrets under the image's NODE_ENV=production (a dev
cluster runs it as development).
*/}}
{{- define "calsync.topology" -}}
identity:
  grpcPort: 50051
  metricsPort: 9101
  database: true
  sealing: true
  secretPolicy: true
  calendly: true
  calls: []
subscription:
  grpcPort: 50052
  metricsPort: 9102
  database: true
  sealing: true
  secretPolicy: true
  nats: true
  calendly: true
  calls: [identity, meetings]
meetings:
  grpcPort: 50053
  metricsPort: 9103
  database: true
  nats: true
  calendly: true
  calls: [identity]
gateway:
  httpPort: 8080
  portVariable: HTTP_PORT
  nats: true
  public: true
  secretPolicy: true
  calls: [identity, subscription, meetings]
calendly-sim:
  httpPort: 8081
  portVariable: SIM_PORT
  healthPath: /_sim/healthz
  dev: true
  calls: []
{{- end }}

{{/* The topology entry of one service, as a dict. Takes (dict "root" $ "name" ...). */}}
{{- define "calsync.facts" -}}
{{- $all := include "calsync.topology" .root | fromYaml }}
{{- toYaml (get $all .name) }}
{{- end }}

{{/* Whether a service serves or calls calsync gRPC, and so carries a certificate. */}}
{{- define "calsync.grpcTls" -}}
{{- $facts := include "calsync.facts" . | fromYaml }}
{{- if or $facts.grpcPort $facts.calls }}true{{ end }}
{{- end }}

{{/* The Secret holding a service's gRPC certificate, key and CA. Takes (dict "root" $ "name" ...). */}}
{{- define "calsync.grpcTlsSecret" -}}
{{- default (printf "%s-grpc-tls" (include "calsync.componentName" .)) (index .root.Values.grpcTls.secretNames .name) }}
{{- end }}

{{/* The gRPC identity a service's certificate names. */}}
{{- define "calsync.grpcIdentity" -}}
{{- printf "calsync-%s" .name }}
{{- end }}

{{/* gRPC address of a service inside the cluster: host:port. */}}
{{- define "calsync.grpcAddr" -}}
{{- $facts := include "calsync.facts" . | fromYaml }}
{{- printf "%s:%v" (include "calsync.componentName" .) $facts.grpcPort }}
{{- end }}

{{- define "calsync.image" -}}
{{- $image := .values.image }}
{{- $repository := $image.repository }}
{{- with .root.Values.imageRegistry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}
{{- end }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (toString (default .root.Chart.AppVersion $image.tag)) }}
{{- end }}
{{- end }}

{{/*
Secret variables that other values make wrong to pass: the gateway refuses AUTH_JWT_SECRET next
to AUTH_JWKS_URL, and the operator's Secret may well hold both.
*/}}
{{- define "calsync.unusedSecrets" -}}
{{- $unused := list }}
{{- if .Values.auth.jwksUrl }}
{{- $unused = append $unused "AUTH_JWT_SECRET" }}
{{- end }}
{{- toYaml $unused }}
{{- end }}

{{/* Name of the Secret the services read: the operator's, or the one this chart renders. */}}
{{- define "calsync.secretName" -}}
{{- default (printf "%s-secrets" (include "calsync.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "calsync.natsUrl" -}}
{{- required "externalNats.url is required: NATS JetStream is installed separately (deploy/README.md)" .Values.externalNats.url }}
{{- end }}

{{/* Where the services reach Calendly: the in-cluster simulator in dev, else the configured URLs. */}}
{{- define "calsync.calendlyUrls" -}}
{{- if .Values.dev.enabled }}
{{- $sim := printf "http://%s:8081" (include "calsync.componentName" (dict "root" . "name" "calendly-sim")) }}
CALENDLY_API_URL: {{ $sim }}
CALENDLY_AUTH_URL: {{ $sim }}
{{- else }}
CALENDLY_API_URL: {{ .Values.calendly.apiUrl }}
CALENDLY_AUTH_URL: {{ .Values.calendly.authUrl }}
{{- end }}
{{- end }}

{{/*
An env value as the string the service parses. YAML numbers arrive as float64, which would
print 1000000 as 1e+06; whole numbers are printed as integers.
*/}}
{{- define "calsync.envString" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) }}
{{- int64 . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* Seconds the kubelet waits after SIGTERM: the service's own delay and drain, plus slack. */}}
{{- define "calsync.terminationGracePeriod" -}}
{{- $ms := add (int64 .Values.shutdown.delayMs) (int64 .Values.shutdown.timeoutMs) }}
{{- add (div (add $ms 999) 1000) 5 }}
{{- end }}
