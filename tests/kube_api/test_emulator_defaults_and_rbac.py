"""The emulator fills in what a real API server defaults, and enforces RBAC for ServiceAccount tokens."""

from __future__ import annotations

import httpx

from tests.kube_api.conftest import SERVICES, patch_json, post_json


def test_built_in_kinds_come_back_defaulted(api):
    container = {
        "name": "c",
        "image": "registry.test/generator:1",
        "ports": [{"containerPort": 8000}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8000}},
    }
    template = {"metadata": {"labels": {"app": "g"}}, "spec": {"containers": [container]}}
    deployment = post_json(
        api,
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "metadata": {"name": "g"},
            "spec": {"selector": {"matchLabels": {"app": "g"}}, "template": template},
        },
    ).json()["spec"]
    assert (
        deployment["replicas"],
        deployment["revisionHistoryLimit"],
        deployment["progressDeadlineSeconds"],
    ) == (1, 10, 600)
    assert deployment["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    pod = deployment["template"]["spec"]
    assert (pod["restartPolicy"], pod["dnsPolicy"], pod["terminationGracePeriodSeconds"]) == (
        "Always",
        "ClusterFirst",
        30,
    )
    (live,) = pod["containers"]
    assert live["imagePullPolicy"] == "IfNotPresent" and live["ports"][0]["protocol"] == "TCP"
    assert live["readinessProbe"] == {
        "httpGet": {"path": "/readyz", "port": 8000, "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }

    job = post_json(
        api,
        "/apis/batch/v1/namespaces/default/jobs",
        {
            "metadata": {"name": "j"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [dict(container, image="t:latest")]}
                }
            },
        },
    ).json()
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "j"
    assert (job["spec"]["backoffLimit"], job["spec"]["completions"], job["spec"]["suspend"]) == (6, 1, False)
    assert job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"

    service = post_json(
        api,
        SERVICES,
        {"metadata": {"name": "g"}, "spec": {"selector": {"app": "g"}, "ports": [{"port": 8000}]}},
    ).json()
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["clusterIP"].startswith("10.96.")
    assert service["spec"]["ports"] == [{"port": 8000, "protocol": "TCP", "targetPort": 8000}]
    patched = patch_json(api, f"{SERVICES}/g", {"spec": {"ports": [{"port": 9000}]}}).json()["spec"]
    assert patched["clusterIP"] == service["spec"]["clusterIP"] and patched["ports"][0]["targetPort"] == 9000


def test_service_account_tokens_are_authorised_by_rbac(api, server):
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    post_json(api, "/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "op"}})
    post_json(
        api,
        f"{rbac}/roles",
        {
            "metadata": {"name": "jobs"},
            "rules": [
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "create"]},
                {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["patch"]},
            ],
        },
    )
    post_json(
        api,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {
            "metadata": {"name": "view-cm", "labels": {"aggregate-to-op": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        },
    )
    post_json(
        api,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {
            "metadata": {"name": "op-aggregated"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-op": "true"}}]},
        },
    )
    subject = [{"kind": "ServiceAccount", "name": "op", "namespace": "default"}]
    post_json(
        api,
        f"{rbac}/rolebindings",
        {
            "metadata": {"name": "op"},
            "subjects": subject,
            "roleRef": {"kind": "Role", "name": "jobs", "apiGroup": "rbac.authorization.k8s.io"},
        },
    )
    post_json(
        api,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "metadata": {"name": "op"},
            "subjects": subject,
            "roleRef": {
                "kind": "ClusterRole",
                "name": "op-aggregated",
                "apiGroup": "rbac.authorization.k8s.io",
            },
        },
    )
    token = post_json(api, "/api/v1/namespaces/default/serviceaccounts/op/token", {"spec": {}}).json()[
        "status"
    ]["token"]
    jobs = "/apis/batch/v1/namespaces/default/jobs"
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as pod:
        assert pod.get(jobs).status_code == 200
        assert pod.get("/api/v1/configmaps").status_code == 200  # through the aggregated ClusterRole
        assert pod.post(jobs, json={"metadata": {"name": "rbac-job"}}).status_code == 201
        assert patch_json(pod, f"{jobs}/rbac-job/status", {"status": {"active": 1}}).status_code == 200
        denied = pod.delete(f"{jobs}/rbac-job")
        assert denied.status_code == 403
        assert denied.json()["message"] == (
            'jobs.batch "rbac-job" is forbidden: User "system:serviceaccount:default:op" cannot delete '
            'resource "jobs" in API group "batch" in the namespace "default"'
        )
        assert pod.get("/api/v1/namespaces/kube-system/configmaps").status_code == 200
        assert pod.get("/api/v1/namespaces/default/secrets").status_code == 403
        assert (
            pod.get("/apis/batch/v1/namespaces/kube-system/jobs").status_code == 403
        )  # Role is per namespace
        # A SelfSubjectAccessReview answers what the same rules decide (any authenticated user may ask).
        reviews = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"

        def review(verb: str, namespace: str = "default") -> bool:
            attributes = {"namespace": namespace, "verb": verb, "group": "batch", "resource": "jobs"}
            answer = pod.post(reviews, json={"spec": {"resourceAttributes": attributes}})
            assert answer.status_code == 201, answer.text
            return answer.json()["status"]["allowed"]

        assert review("create") and not review("delete") and not review("list", "kube-system")
        assert pod.post(reviews, json={"spec": {}}).status_code == 422
