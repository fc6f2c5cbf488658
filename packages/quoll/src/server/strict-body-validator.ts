import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyServerOptions } from 'fastify';

type ValidatorFactory = ReturnType<typeof AjvCompiler>;

/**
 * The app's schema validators: a JSON body is taken as the types its schema says, while the
 * query string, path parameters and headers (which only ever arrive as text) are read as the
 * numbers and booleans they spell. One ajv that coerces everything let `{"ttlSeconds":"10"}`,
 * `[5]` and `true` through as 10, 5 and 1; such a body is now a 400 `invalid_request` naming the
 * field (`body/ttlSeconds must be integer.`).
 */
export function strictBodyValidator(): NonNullable<FastifyServerOptions['schemaController']> {
  const pooled: ValidatorFactory = AjvCompiler();
  return {
    compilersFactory: {
      buildValidator: (externalSchemas, options) => {
        const text = pooled(externalSchemas, options);
        // The app's ajv runs in its default (JSON Schema) mode, never JTD.
        const json = pooled(externalSchemas, {
          onCreate: options?.onCreate,
          plugins: options?.plugins,
          customOptions: { ...options?.customOptions, coerceTypes: false },
        });
        return (route) => (route.httpPart === 'body' ? json(route) : text(route));
      },
    },
  };
}
