"""Names several components agree on: namespaces, app labels, ports."""

MODELS_NAMESPACE = "models"
MONITORING_NAMESPACE = "monitoring"
KEDA_NAMESPACE = "keda"
VECTOR_DB_NAMESPACE = "vector-db"
GATEWAY_NAMESPACE = "llmops-gateway"
VLLM_APP = "vllm"
VLLM_PORT = 8000  # vLLM serves the OpenAI API, /health and /metrics on one port
DCGM_APP = "dcgm-exporter"
DCGM_PORT = 9400
SYSTEM_NAMESPACE = "kube-system"
KARPENTER_NAMESPACE = SYSTEM_NAMESPACE
KARPENTER_RELEASE = "karpenter"  # the Helm release: its Service is named after it
KARPENTER_METRICS_PORT_NAME = "http-metrics"
