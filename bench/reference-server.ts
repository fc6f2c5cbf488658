// The hand-rolled reference (F): what a careful user writes instead of Quoll to give the same
// answer (time, in.tensor, out.variable, check_failures) — one route, no registry, no logging,
// no auth, the model run on the main thread with ONE onnxruntime thread (default; `taskset`
// holds it). Usage: tsx bench/reference-server.ts <model.onnx> <port> [threads; 0 = ort default]
import Fastify from 'fastify';
import * as ort from 'onnxruntime-node';
import * as arrow from 'apache-arrow';

const [modelPath = '', port = '8471', threads = '1'] = process.argv.slice(2);
const one = {
  intraOpNumThreads: Number(threads),
  interOpNumThreads: 1,
  executionMode: 'sequential',
} as const;
const session = await ort.InferenceSession.create(modelPath, threads === '0' ? {} : one);
const [input = 'float_input', output = 'variable'] = [session.inputNames[0], session.outputNames[0]];
const app = Fastify({ bodyLimit: 256 * 1024 * 1024 });
const ARROW = 'application/vnd.apache.arrow.file';
app.addContentTypeParser(ARROW, { parseAs: 'buffer' }, (_r, b, done) => done(null, b));
const listType = new arrow.FixedSizeList(1, new arrow.Field('inner', new arrow.Float32()));
async function run(values: Float32Array, rows: number): Promise<Float32Array> {
  const result = await session.run({ [input]: new ort.Tensor('float32', values, [rows, 18]) });
  return result[output]?.data as Float32Array;
}

app.post('/infer', async (req, reply) => {
  const time = Date.now();
  if (req.headers['content-type'] === ARROW) {
    const table = arrow.tableFromIPC(req.body as Buffer);
    const col = table.getChild('tensor') as arrow.Vector<arrow.FixedSizeList<arrow.Float32>>;
    const rows = table.numRows;
    const values = new Float32Array(rows * 18);
    for (let i = 0; i < rows; i++) values.set(col.get(i)?.toArray() as Float32Array, i * 18);
    const data = arrow.makeData({ type: new arrow.Float32(), data: await run(values, rows) });
    const answer = new arrow.Table({
      time: arrow.makeVector(new BigInt64Array(rows).fill(BigInt(time))),
      'in.tensor': col,
      'out.variable': arrow.makeVector(arrow.makeData({ type: listType, length: rows, child: data })),
      check_failures: arrow.makeVector(new Uint32Array(rows)),
    });
    return reply.header('content-type', ARROW).send(Buffer.from(arrow.tableToIPC(answer, 'file')));
  }
  const records = req.body as { tensor: number[] }[];
  const values = new Float32Array(records.length * 18);
  records.forEach((r, i) => values.set(r.tensor, i * 18));
  const out = await run(values, records.length);
  return records.map((r, i) => ({
    time,
    'in.tensor': r.tensor,
    'out.variable': [out[i]],
    check_failures: 0,
  }));
});

await app.listen({ host: '127.0.0.1', port: Number(port) });
console.log(`reference listening on http://127.0.0.1:${port} (onnxruntime threads: ${threads})`);
