-- Python orchestrations: pip's output is a packaging-log source of its own.
ALTER TABLE orchestration_packaging_logs DROP CONSTRAINT IF EXISTS orchestration_packaging_logs_source_check;
ALTER TABLE orchestration_packaging_logs
  ADD CONSTRAINT orchestration_packaging_logs_source_check CHECK (source IN ('quoll', 'npm', 'esbuild', 'pip'));
