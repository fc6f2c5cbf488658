export { inTask, taskArgs } from './task-env.js';
