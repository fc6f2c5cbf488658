import { describe, expect, it } from 'vitest';
import {
  Dictionary,
  Field,
  Float64,
  Int32,
  List,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableFromIPC,
  tableToIPC,
  Utf8,
} from 'apache-arrow';
import { freezeSchema, isFrozenSchema } from './freeze-schema.js';

function nestedSchema(): Schema {
  const child = new Field('item', new Utf8(), true, new Map([['child', 'yes']]));
  const struct = new Struct([new Field('a', new Int32(), false), new Field('tags', new List(child), true)]);
  return new Schema(
    [
      new Field('x', new Float64(), false, new Map([['unit', 'm']])),
      new Field('s', struct, true),
      new Field('d', new Dictionary(new Utf8(), new Int32(), 7), true),
    ],
    new Map([['model', 'houseprice']]),
  );
}

describe('freezeSchema', () => {
  it('refuses changes to the metadata and dictionaries Maps, naming the way to derive a schema', () => {
    const schema = freezeSchema(nestedSchema());
    expect(() => schema.metadata.set('note', 'later')).toThrow(/read-only.*Build a new Schema/);
    expect(() => schema.metadata.delete('model')).toThrow(TypeError);
    expect(() => schema.metadata.clear()).toThrow(TypeError);
    expect(() => schema.fields[0]!.metadata.set('unit', 'ft')).toThrow(TypeError);
    expect(() => schema.dictionaries.set(8, new Utf8())).toThrow(TypeError);
    expect([...schema.metadata]).toEqual([['model', 'houseprice']]);
    expect([...schema.fields[0]!.metadata]).toEqual([['unit', 'm']]);
  });

  it('refuses changes to the fields, at every depth, and to the types', () => {
    const schema = freezeSchema(nestedSchema());
    const struct = schema.fields[1]!.type as Struct;
    const list = struct.children[1]!.type as List;
    expect(() => schema.fields.push(new Field('y', new Float64()))).toThrow(TypeError);
    expect(() => {
      (schema.fields[0] as { name: string }).name = 'renamed';
    }).toThrow(TypeError);
    expect(() => struct.children.pop()).toThrow(TypeError);
    expect(() => list.children[0]!.metadata.set('child', 'no')).toThrow(TypeError);
    expect(() => {
      (list.children[0] as { nullable: boolean }).nullable = false;
    }).toThrow(TypeError);
    expect(() => {
      (schema.fields[0]!.type as { precision: number }).precision = 0;
    }).toThrow(TypeError);
    const dictionary = schema.fields[2]!.type as Dictionary;
    expect(() => {
      (dictionary.indices as { bitWidth: number }).bitWidth = 8;
    }).toThrow(TypeError);
    expect(() => {
      (schema as { fields: Field[] }).fields = [];
    }).toThrow(TypeError);
  });

  it('leaves the schema readable and written by apache-arrow as before', () => {
    const schema = new Schema(
      [new Field('x', new Float64(), false, new Map([['unit', 'm']]))],
      new Map([['model', 'houseprice']]),
    );
    const x = makeData({ type: new Float64(), length: 2, data: Float64Array.of(1.5, 2.5) });
    const data = makeData({ type: new Struct(schema.fields), length: 2, children: [x] });
    const write = () => tableToIPC(new Table(schema, [new RecordBatch(schema, data)]), 'file');
    const before = write();
    freezeSchema(schema);
    const after = write();
    expect(after).toEqual(before);
    const read = tableFromIPC(after);
    expect(read.schema.metadata.get('model')).toBe('houseprice');
    expect(read.schema.fields[0]!.metadata.get('unit')).toBe('m');
    expect(read.getChild('x')!.toArray()).toEqual(Float64Array.of(1.5, 2.5));
  });

  it('marks only the schemas it froze, and freezes a schema whose types another frozen schema shares', () => {
    const first = nestedSchema();
    const second = new Schema(first.fields.slice(0, 2), new Map(first.metadata));
    expect(isFrozenSchema(first)).toBe(false);
    freezeSchema(first);
    expect(() => freezeSchema(second)).not.toThrow();
    expect(isFrozenSchema(first)).toBe(true);
    expect(isFrozenSchema(second)).toBe(true);
    expect(isFrozenSchema(nestedSchema())).toBe(false);
  });
});
