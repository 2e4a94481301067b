"""The Kubernetes backend: TrainingJob, TrainedModel and GenerationRequest resources, acting as the caller.

Every request to the Kubernetes API carries the caller's own bearer token (as the Kubernetes dashboard and
Headlamp do), so Kubernetes RBAC decides what the caller may do; the studio holds no rights of its own
over these resources. Datasets and audio live in the artifact store the operator uses.
"""

from musicgen_ops.studio.kube.backend import KubernetesBackend
from musicgen_ops.studio.kube.client import KubeClient

__all__ = ["KubeClient", "KubernetesBackend"]
