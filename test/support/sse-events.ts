/** One server-sent event: its `event:` name and its first `data:` line ('' when it has none). */
export interface SseEvent {
  type: string;
  data: string;
}

/**
 * The events of a `text/event-stream` body as they arrive, until the stream closes (a broken
 * stream throws). Blocks without an `event:` line (comments, keep-alives) are passed over.
 *
 * @example for await (const event of sseEvents(res.body)) seen.push(event.type);
 */
export async function* sseEvents(body: ReadableStream<Uint8Array> | null): AsyncGenerator<SseEvent> {
  if (body === null) throw new Error('the event stream has no body');
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of body as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    let at: number;
    while ((at = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, at);
      text = text.slice(at + 2);
      const type = /^event: (\w+)/m.exec(block)?.[1];
      if (type !== undefined) yield { type, data: /^data: (.*)$/m.exec(block)?.[1] ?? '' };
    }
  }
}
