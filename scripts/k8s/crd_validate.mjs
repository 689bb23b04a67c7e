// Validates custom resources against the schemas of their CRDs, as the operators publish
// them (KEDA, Prometheus operator; @kubernetes-models packages, pinned in package.json).
// Reads a JSON array of objects on stdin; prints one line per problem; exit 1 on any.
//   node scripts/k8s/crd_validate.mjs < objects.json   (scripts/k8s_check.py runs it)
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
let problems = 0;
for (const item of JSON.parse(input)) {
  const { source, object } = item;
  const key = `${object.apiVersion}/${object.kind}`;
  const name = `${source}: ${object.kind}/${object.metadata?.name}`;
  const Model = MODELS[key];
  if (!Model) {
    console.log(`${name}: no schema for ${key}`);
    problems++;
    continue;
  }
  try {
    new Model(object).validate();
  } catch (error) {
    const details = (error.errors || [{ message: error.message }])
      .map((e) => `${e.instancePath || "/"} ${e.message}`)
      .join("; ");
    console.log(`${name}: ${details}`);
    problems++;
  }
}
process.exit(problems ? 1 : 0);
