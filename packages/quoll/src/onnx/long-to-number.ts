/** protobufjs gives int64 fields as numbers or Long objects: the number either way (0 for anything else). */
export function longToNumber(value: unknown): number {
  if (typeof value === 'number') return value;
  if (
    value !== null &&
    typeof value === 'object' &&
    'toNumber' in value &&
    typeof value.toNumber === 'function'
  )
    return Number((value as { toNumber(): number }).toNumber());
  return 0;
}
