import type { IncomingMessage } from 'node:http';
import type { ErrorBody } from '@quoll/client/wire';

/**
 * Reads an answer to its end: the `error.code` of a Quoll error body, or undefined when the
 * body is not one (a success, an empty or cut body).
 *
 * @example req.on('response', (res) => void errorCodeOf(res).then((code) => done(res.statusCode, code)));
 */
export function errorCodeOf(res: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (part: string) => (text += part));
    res.on('error', reject);
    res.on('end', () => {
      try {
        resolve((JSON.parse(text) as ErrorBody).error.code);
      } catch {
        resolve(undefined);
      }
    });
  });
}
