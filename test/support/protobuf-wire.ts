/** A varint's bytes (protobuf wire format). */
export function varint(value: number): Buffer {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return Buffer.from(out);
}

/** A length-delimited field `field` holding `bytes`. */
export function delimited(field: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([varint(field * 8 + 2), varint(bytes.byteLength), bytes]);
}
