import type { Client, Pipeline } from '@quoll/client';

/**
 * Uploads a model and deploys it as the one step of a new pipeline, in the client's current
 * workspace: the deployed pipeline (its `url()` is where to send inferences).
 *
 * @example const pipeline = await deployModelPipeline(client, 'large', 'scale', makeScaleModel({ width: 2 }));
 */
export async function deployModelPipeline(
  client: Client,
  pipelineName: string,
  modelName: string,
  model: Uint8Array,
): Promise<Pipeline> {
  const uploaded = await client.uploadModel(modelName, model);
  const pipeline = await client.buildPipeline(pipelineName);
  await pipeline.addModelStep(uploaded);
  await pipeline.deploy();
  return pipeline;
}
