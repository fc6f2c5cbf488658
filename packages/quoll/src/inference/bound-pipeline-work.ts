import { boundModelWork } from '../onnx/index.js';
import type { ModelWork, TensorBound } from '../onnx/index.js';
import type { WorkerStepSpec } from './worker-protocol.js';

/** {@link boundPipelineWork}'s answer: a model's ({@link ModelWork}) for a whole pipeline. */
export type PipelineWork =
  | {
      readonly bounded: true;
      /** An upper bound of one run's work through every step, in element operations. */
      readonly work: number;
      /** The first step's inputs as the bound assumes them. */
      readonly inputs: ReadonlyMap<string, TensorBound>;
    }
  | { readonly bounded: false; readonly reason: string };

/**
 * The bound of one inline run's work through a pipeline's steps (`boundModelWork` of each
 * model): the first step fed at most `limits.rows` rows (a merged run: `INLINE_MAX_BATCH_ROWS`)
 * and `limits.elements` values (`INLINE_MAX_BATCH_ELEMENTS`), each later step fed what the
 * bound of the step before says of the output it takes; a step run row by row counts a run of
 * one row `limits.rows` times. Pure; the admission probe's thread computes it (`runInlineProbe`'s
 * caller in the worker), so that the walk (tens of ms for a large model) never holds the HTTP thread.
 */
export function boundPipelineWork(
  specs: readonly WorkerStepSpec[],
  files: ReadonlyMap<string, Uint8Array>,
  limits: { readonly rows: number; readonly elements: number },
): PipelineWork {
  let work = 0;
  let inputs: ReadonlyMap<string, TensorBound> | null = null;
  let given: Map<string, TensorBound> | undefined;
  for (const [index, spec] of specs.entries()) {
    const file = files.get(spec.sha);
    if (!file) return { bounded: false, reason: `${spec.label}: not read` };
    const bound: ModelWork = boundModelWork(file, {
      rows: spec.single ? 1 : limits.rows,
      elements: limits.elements,
      given,
    });
    if (!bound.bounded) return { bounded: false, reason: `${spec.label}: ${bound.reason}` };
    work += (spec.single ? limits.rows : 1) * bound.work;
    inputs ??= bound.inputs;
    const next = specs[index + 1];
    if (next === undefined) break;
    given = new Map();
    for (const [i, input] of next.inputs.entries()) {
      const source = bound.outputs.get(next.feedsFrom?.[i] ?? '');
      if (!source)
        return { bounded: false, reason: `${next.label}: input "${input.name}" has no bounded source` };
      given.set(input.name, source);
    }
  }
  return inputs === null ? { bounded: false, reason: 'no steps' } : { bounded: true, work, inputs };
}
