/**
 * The longest path, in nodes, that starts at each node of a forest given each node's two
 * children (`-1` for none), depth first without recursion, so a chain of a million nodes costs
 * a stack of a million numbers and no frame. Null when a child leads back to a node on the
 * current path (a cycle). The work bound (`boundModelWork`) and the load check of tree depths
 * (`checkTreeDepths`) both read a tree ensemble's depths from it.
 * @example
 * // 0 → 1 → 2, and 0 → 3
 * longestTreePaths(Int32Array.of(1, 2, -1, -1), Int32Array.of(3, -1, -1, -1)); // [3, 2, 1, 1]
 */
export function longestTreePaths(onTrue: Int32Array, onFalse: Int32Array): Int32Array | null {
  const count = onTrue.length;
  // 0 not seen yet, -1 on the stack (met again: a cycle), else the length found.
  const depth = new Int32Array(count);
  const stack: number[] = [];
  for (let start = 0; start < count; start++) {
    if (depth[start] !== 0) continue;
    depth[start] = -1;
    stack.push(start);
    while (stack.length > 0) {
      const at = stack[stack.length - 1]!;
      const t = onTrue[at]!;
      const f = onFalse[at]!;
      if (t >= 0 && depth[t] === 0) {
        depth[t] = -1;
        stack.push(t);
        continue;
      }
      if (f >= 0 && depth[f] === 0) {
        depth[f] = -1;
        stack.push(f);
        continue;
      }
      if ((t >= 0 && depth[t] === -1) || (f >= 0 && depth[f] === -1)) return null;
      depth[at] = 1 + Math.max(t >= 0 ? depth[t]! : 0, f >= 0 ? depth[f]! : 0);
      stack.pop();
    }
  }
  return depth;
}
