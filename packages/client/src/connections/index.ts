export { Connection, DETAILS_MASK } from './connection.js';
export { ConnectionList } from './connection-list.js';
