-- The process holding each node id (a random token it makes at start; same number in
-- migrations/postgres). A node starting with an id another live process holds sees that
-- process's heartbeats go on and refuses to start (node_id_in_use). The embedded home has one
-- node, so here it only keeps the schema the same on both backends.
ALTER TABLE cluster_nodes ADD COLUMN instance TEXT;
