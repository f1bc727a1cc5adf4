{{/*
Everything one service runs as: ServiceAccount, Deployment, Service, PodDisruptionBudget,
HorizontalPodAutoscaler, NetworkPolicy, ServiceMonitor and migration Job. Each service's own
template calls it with (dict "root" $ "name" "<service>") and defines "calsync.<service>.env"
for the variables only it reads.
*/}}

{{/*
NODE_OPTIONS for a service's heap block: V8's old-space and semi-space limits (MiB) that are set;
empty when neither is. scripts/lib/node-options.cjs gives npm run dev and the benches the same
text (deploy/tools/service-env.test.mjs holds them equal).
*/}}
{{- define "calsync.nodeOptions" -}}
{{- $flags := list }}
{{- if and . .maxOldSpaceMb }}
{{- $flags = append $flags (printf "--max-old-space-size=%d" (int .maxOldSpaceMb)) }}
{{- end }}
{{- if and . .maxSemiSpaceMb }}
{{- $flags = append $flags (printf "--max-semi-space-size=%d" (int .maxSemiSpaceMb)) }}
{{- end }}
{{- join " " $flags }}
{{- end }}

{{/* The plain (non-secret) variables of one service, as a YAML map of strings. */}}
{{- define "calsync.env" -}}
{{- $root := .root }}
{{- $facts := include "calsync.facts" . | fromYaml }}
{{- $values := index $root.Values .name }}
{{- $computed := dict "LOG_LEVEL" $root.Values.logLevel }}
{{- $nodeOptions := include "calsync.nodeOptions" $values.heap }}
{{- if $nodeOptions }}
{{- $_ := set $computed "NODE_OPTIONS" $nodeOptions }}
{{- end }}
{{- /* The simulator reads LOG_LEVEL and its own SIM_* variables only. */}}
{{- if not $facts.dev }}
{{- $_ := set $computed "SHUTDOWN_DELAY_MS" $root.Values.shutdown.delayMs }}
{{- $_ := set $computed "SHUTDOWN_TIMEOUT_MS" $root.Values.shutdown.timeoutMs }}
{{- end }}
{{- if $facts.nats }}
{{- $_ := set $computed "NATS_URL" (include "calsync.natsUrl" $root) }}
{{- $_ := set $computed "NATS_SUBJECT_PREFIX" $root.Values.natsSubjectPrefix }}
{{- $_ := set $computed "NATS_STREAM_REPLICAS" $root.Values.natsStreamReplicas }}
{{- end }}
{{- if and $root.Values.dev.enabled $facts.secretPolicy }}
{{- /* The images run with NODE_ENV=production, which refuses the published secrets of values-dev.yaml
(the gateway's JWT secret, the sealing keys); a dev cluster runs them as development. */}}
{{- $_ := set $computed "NODE_ENV" "development" }}
{{- end }}
{{- if and $facts.sealing $root.Values.sealing.activeKeyId }}
{{- $_ := set $computed "SEALING_ACTIVE_KEY_ID" $root.Values.sealing.activeKeyId }}
{{- end }}
{{- if $facts.calendly }}
{{- $computed = merge (include "calsync.calendlyUrls" $root | fromYaml) $computed }}
{{- end }}
{{- $own := include (printf "calsync.%s.env" .name) $root | fromYaml }}
{{- /* Ports and peer addresses are fixed: probes, Services and NetworkPolicies depend on them. */}}
{{- $fixed := dict }}
{{- if $facts.grpcPort }}
{{- $_ := set $fixed "GRPC_PORT" $facts.grpcPort }}
{{- $_ := set $fixed "METRICS_PORT" $facts.metricsPort }}
{{- end }}
{{- if $facts.portVariable }}
{{- $_ := set $fixed $facts.portVariable $facts.httpPort }}
{{- end }}
{{- range $facts.calls }}
{{- $_ := set $fixed (printf "%s_ADDR" (upper .)) (include "calsync.grpcAddr" (dict "root" $root "name" .)) }}
{{- end }}
{{- if include "calsync.grpcTls" . }}
{{- if $root.Values.grpcTls.plaintext }}
{{- $_ := set $fixed "GRPC_PLAINTEXT" "true" }}
{{- else }}
{{- $_ := set $fixed "GRPC_TLS_CERT_FILE" "/var/run/calsync/grpc/tls.crt" }}
{{- $_ := set $fixed "GRPC_TLS_KEY_FILE" "/var/run/calsync/grpc/tls.key" }}
{{- $_ := set $fixed "GRPC_TLS_CA_FILE" "/var/run/calsync/grpc/ca.crt" }}
{{- $_ := set $fixed "GRPC_TLS_RELOAD_INTERVAL_MS" $root.Values.grpcTls.reloadIntervalMs }}
{{- end }}
{{- end }}
{{- $all := merge $fixed ($values.env | default dict) $own $computed }}
{{- range $key, $value := $all }}
{{- if not (hasKey ($values.secretEnv | default dict) $key) }}
{{ $key }}: {{ include "calsync.envString" $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The container env list: plain variables, then secret references, each sorted by name. */}}
{{- define "calsync.envList" -}}
{{- $root := .root }}
{{- $values := index $root.Values .name }}
{{- $env := include "calsync.env" . | fromYaml }}
{{- range $key := keys $env | sortAlpha }}
- name: {{ $key }}
  value: {{ index $env $key | quote }}
{{- end }}
{{- $secretEnv := $values.secretEnv | default dict }}
{{- $unused := include "calsync.unusedSecrets" $root | fromYamlArray }}
{{- range $key := keys $secretEnv | sortAlpha }}
{{- if not (has $key $unused) }}
{{- $ref := index $secretEnv $key }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ default (include "calsync.secretName" $root) $ref.name }}
      key: {{ required (printf "%s.secretEnv.%s.key is required" $.name $key) $ref.key }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A digest of the secret values this service reads from the chart's own Secret, so changing one
rolls exactly the pods that use it. Secrets managed outside the chart are not seen here.
*/}}
{{- define "calsync.secretChecksum" -}}
{{- $root := .root }}
{{- $values := index $root.Values .name }}
{{- $parts := list }}
{{- range $key, $ref := $values.secretEnv | default dict }}
{{- if and (not $ref.name) (not $root.Values.secrets.existingSecret) }}
{{- $parts = append $parts (printf "%s=%s" $ref.key (toString (index $root.Values.secrets.values $ref.key | default ""))) }}
{{- end }}
{{- end }}
{{- sortAlpha $parts | join "\n" | sha256sum }}
{{- end }}

{{- define "calsync.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "calsync.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
capabilities:
  drop: [ALL]
{{- end }}

{{/* The one writable place in the container: os.tmpdir(). */}}
{{- define "calsync.tmpVolume" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 64Mi
{{- end }}

{{- define "calsync.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* A service's gRPC certificate (mutual TLS): its Secret, read-only, never as a subPath, so renewals arrive. */}}
{{- define "calsync.grpcTlsVolume" -}}
{{- if and (include "calsync.grpcTls" .) (not .root.Values.grpcTls.plaintext) }}
- name: grpc-tls
  secret:
    secretName: {{ include "calsync.grpcTlsSecret" . }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{- define "calsync.grpcTlsMount" -}}
{{- if and (include "calsync.grpcTls" .) (not .root.Values.grpcTls.plaintext) }}
- name: grpc-tls
  mountPath: /var/run/calsync/grpc
  readOnly: true
{{- end }}
{{- end }}

{{/* The migration container: the service's own image and env, told to migrate and exit. */}}
{{- define "calsync.migrateContainer" -}}
{{- $values := index .root.Values .name }}
- name: migrate
  image: {{ include "calsync.image" (dict "root" .root "values" $values) }}
  imagePullPolicy: {{ .root.Values.imagePullPolicy }}
  env:
    {{- include "calsync.envList" . | trim | nindent 4 }}
    - name: MIGRATE_ONLY
      value: "true"
  resources:
    {{- toYaml .root.Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- include "calsync.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    {{- include "calsync.tmpMount" . | nindent 4 }}
    {{- include "calsync.grpcTlsMount" . | nindent 4 }}
{{- end }}

{{- define "calsync.probes" -}}
{{- $facts := include "calsync.facts" . | fromYaml }}
{{- $probes := .root.Values.probes }}
{{- range $kind := list "startup" "readiness" "liveness" }}
{{ $kind }}Probe:
  {{- if $facts.grpcPort }}
  # The kubelet's gRPC probes cannot present a client certificate: the metrics port answers
  # /readyz (gRPC health) and /healthz (the process serves: an outage must not restart pods).
  httpGet:
    path: {{ ternary "/healthz" "/readyz" (eq $kind "liveness") }}
    port: metrics
  {{- else }}
  httpGet:
    path: {{ $facts.healthPath | default (ternary "/readyz" "/healthz" (eq $kind "readiness")) }}
    port: http
  {{- end }}
  {{- toYaml (index $probes $kind) | nindent 2 }}
{{- end }}
{{- end }}

{{- define "calsync.workload" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $ctx := dict "root" $root "name" $name }}
{{- $facts := include "calsync.facts" $ctx | fromYaml }}
{{- $values := index $root.Values $name }}
{{- $fullName := include "calsync.componentName" $ctx }}
{{- $migrateInit := and $facts.database (eq $root.Values.migrations.mode "initContainer") }}
{{- $migrateJob := and $facts.database (eq $root.Values.migrations.mode "job") }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "calsync.componentLabels" $ctx | nindent 4 }}
  {{- with $values.serviceAccountAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "calsync.componentLabels" $ctx | nindent 4 }}
spec:
  {{- if not $values.autoscaling.enabled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 25%
  selector:
    matchLabels:
      {{- include "calsync.serverSelector" $ctx | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "calsync.componentLabels" $ctx | nindent 8 }}
        calsync.io/role: server
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/secrets: {{ include "calsync.secretChecksum" $ctx }}
        {{- with $values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $fullName }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ include "calsync.terminationGracePeriod" $root }}
      securityContext:
        {{- include "calsync.podSecurityContext" $ctx | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $migrateInit }}
      initContainers:
        {{- include "calsync.migrateContainer" $ctx | trim | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "calsync.image" (dict "root" $root "values" $values) }}
          imagePullPolicy: {{ $root.Values.imagePullPolicy }}
          ports:
            {{- if $facts.grpcPort }}
            - name: grpc
              containerPort: {{ $facts.grpcPort }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $facts.metricsPort }}
              protocol: TCP
            {{- else }}
            - name: http
              containerPort: {{ $facts.httpPort }}
              protocol: TCP
            {{- end }}
          env:
            {{- include "calsync.envList" $ctx | trim | nindent 12 }}
          {{- include "calsync.probes" $ctx | trim | nindent 10 }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- include "calsync.containerSecurityContext" $ctx | nindent 12 }}
          volumeMounts:
            {{- include "calsync.tmpMount" $ctx | nindent 12 }}
            {{- include "calsync.grpcTlsMount" $ctx | nindent 12 }}
      volumes:
        {{- include "calsync.tmpVolume" $ctx | nindent 8 }}
        {{- include "calsync.grpcTlsVolume" $ctx | nindent 8 }}
      {{- if $root.Values.topologySpread.enabled }}
      topologySpreadConstraints:
        {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
        - topologyKey: {{ $key }}
          maxSkew: 1
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "calsync.serverSelector" $ctx | nindent 14 }}
        {{- end }}
      {{- end }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "calsync.componentLabels" $ctx | nindent 4 }}
spec:
  type: ClusterIP
  {{- if $facts.grpcPort }}
  # Headless: DNS answers every ready pod, and the callers' gRPC clients balance round-robin
  # over them (a ClusterIP would pin each long-lived HTTP/2 connection to one pod).
  clusterIP: None
  {{- end }}
  selector:
    {{- include "calsync.serverSelector" $ctx | nindent 4 }}
  ports:
    {{- if $facts.grpcPort }}
    - name: grpc
      port: {{ $facts.grpcPort }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: metrics
      port: {{ $facts.metricsPort }}
      targetPort: metrics
      protocol: TCP
    {{- else }}
    - name: http
      port: {{ $facts.httpPort }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- end }}
{{- if $values.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "calsync.componentLabels" $ctx | nindent 4 }}
spec:
  maxUnavailable: {{ $values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "calsync.serverSelector" $ctx | nindent 6 }}
{{- end }}
{{- if $values.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "calsync.componentLabels" $ctx | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullName }}
  minReplicas: {{ $values.autoscaling.minReplicas }}
  maxReplicas: {{ $values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $values.autoscaling.targetCPUUtilizationPercentage }}
    {{- with $values.autoscaling.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
{{- end }}
{{- if $root.Values.networkPolicy.enabled }}
---
{{- include "calsync.networkPolicy" $ctx }}
{{- end }}
{{- if $root.Values.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $fullName }}
  labels:
    {{- include "calsync.componentLabels" $ctx | nindent 4 }}
    {{- with $root.Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "calsync.componentSelector" $ctx | nindent 6 }}
  endpoints:
    - port: {{ ternary "metrics" "http" (hasKey $facts "grpcPort") }}
      path: /metrics
      interval: {{ $root.Values.serviceMonitor.interval }}
      scrapeTimeout: {{ $root.Values.serviceMonitor.scrapeTimeout }}
{{- end }}
{{- if $migrateJob }}
---
apiVersion: batch/v1
kind: Job
metadata:
  {{- /* A new name per release revision: a Job's pod template cannot be changed in place. */}}
  name: {{ printf "%s-migrate-%d" ($fullName | trunc 48 | trimSuffix "-") (int64 $root.Release.Revision) }}
  labels:
    {{- include "calsync.componentLabels" $ctx | nindent 4 }}
    calsync.io/role: migrate
spec:
  backoffLimit: {{ $root.Values.migrations.job.backoffLimit }}
  activeDeadlineSeconds: {{ $root.Values.migrations.job.activeDeadlineSeconds }}
  ttlSecondsAfterFinished: {{ $root.Values.migrations.job.ttlSecondsAfterFinished }}
  template:
    metadata:
      labels:
        {{- include "calsync.componentLabels" $ctx | nindent 8 }}
        calsync.io/role: migrate
    spec:
      restartPolicy: Never
      serviceAccountName: {{ $fullName }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      securityContext:
        {{- include "calsync.podSecurityContext" $ctx | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        {{- include "calsync.migrateContainer" $ctx | trim | nindent 8 }}
      volumes:
        {{- include "calsync.tmpVolume" $ctx | nindent 8 }}
        {{- include "calsync.grpcTlsVolume" $ctx | nindent 8 }}
      {{- with $values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end }}
