-- A cluster shares each orchestration's packaged output (the compiled files and its dependency
-- environment) as one archive in the shared blob storage; this is its SHA-256. NULL: no archive
-- (an embedded home, or one packaged before this migration): a node builds its copy from the zip.
ALTER TABLE orchestrations ADD COLUMN package_sha TEXT;
