/** Content types the inference and log endpoints speak. */
export const MEDIA_TYPES = {
  json: 'application/json',
  arrowFile: 'application/vnd.apache.arrow.file',
  arrowStream: 'application/vnd.apache.arrow.stream',
  octetStream: 'application/octet-stream',
  zip: 'application/zip',
  eventStream: 'text/event-stream',
} as const;
