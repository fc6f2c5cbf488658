import type { ColumnBinding } from './input-binding.js';

/**
 * Per request column, whether the inference log holds it as Float32: whether every model input
 * it feeds is float32 (one or several), so that its Float64 values (JSON numbers) rounded to
 * Float32 are the values the model received. A column that also feeds an input of another type
 * (tensorFields may name one column for several inputs) is logged as sent: the log cannot hold
 * both, and the rounding would lose what that input received. `null` when no column is flagged.
 */
export function logFloat32Flags(
  columns: readonly string[],
  bindings: readonly ColumnBinding[],
): readonly boolean[] | null {
  const found = columns.map((column) => {
    let fed = false;
    for (const binding of bindings) {
      if (binding.column !== column) continue;
      if (binding.input.type !== 'float32') return false;
      fed = true;
    }
    return fed;
  });
  return found.includes(true) ? found : null;
}
