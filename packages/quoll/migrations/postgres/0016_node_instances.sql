-- The process holding each node id (a random token it makes at start; same number in
-- migrations/sqlite). A node starting with an id another live process holds (a copied home,
-- the same QUOLL_NODE_ID twice) sees that process's heartbeats go on and refuses to start
-- (node_id_in_use), instead of both renewing each other's leases. A row made before this column
-- (no instance) counts as another process's: taken once it is not `up` or is a lease old.
ALTER TABLE cluster_nodes ADD COLUMN instance TEXT COLLATE "C";
