-- Nothing for an embedded home: migrations/postgres/0013 puts a cluster's inference logs in
-- PostgreSQL; an embedded home keeps its segment files (0002). The number is kept in step.
SELECT 1;
