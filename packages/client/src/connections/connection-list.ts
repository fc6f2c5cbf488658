import { PrintableList, renderTable } from '../format/index.js';
import { DETAILS_MASK, formatWorkspaceNames, type Connection } from './connection.js';

/**
 * An array of connections that prints as the seed's table
 * (`name | connection type | details | created at | linked workspaces`, details `*****`),
 * or `(no connections)` when empty. It is a plain array otherwise: `map`, `filter` and the
 * like return ordinary arrays.
 */
export class ConnectionList extends PrintableList<Connection> {
  /** The table, one row per connection. */
  override toString(): string {
    if (this.length === 0) return '(no connections)';
    return renderTable(
      ['name', 'connection type', 'details', 'created at', 'linked workspaces'],
      this.map((c) => [c.name, c.type, DETAILS_MASK, c.createdAt, formatWorkspaceNames(c.workspaceNames)]),
    );
  }
}
