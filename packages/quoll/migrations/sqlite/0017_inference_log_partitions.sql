-- Nothing for an embedded home: migrations/postgres/0017 puts a cluster's inference log
-- batches in partitions; an embedded home keeps its segment files (0002). The number is kept in step.
SELECT 1;
