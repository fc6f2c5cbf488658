import { createRequire } from 'node:module';
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyServerOptions } from 'fastify';

type ValidatorFactory = ReturnType<typeof AjvCompiler>;
type ValidatorCompiler = ReturnType<ValidatorFactory>;
type Validator = ReturnType<ValidatorCompiler>;
type CompilersFactory = NonNullable<
  NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']
>;
type SerializerFactory = NonNullable<CompilersFactory['buildSerializer']>;
type SerializerCompiler = ReturnType<SerializerFactory>;

/** Fastify's own serializer compiler (fast-json-stringify), required from where Fastify requires it. */
const requireFromFastify = createRequire(createRequire(import.meta.url).resolve('fastify'));

/**
 * The app's schema validators: a JSON body is taken as the types its schema says, while the
 * query string, path parameters and headers (which only ever arrive as text) are read as the
 * numbers and booleans they spell. One ajv that coerces everything let `{"ttlSeconds":"10"}`,
 * `[5]` and `true` through as 10, 5 and 1; such a body is now a 400 `invalid_request` naming the
 * field (`body/ttlSeconds must be integer.`).
 *
 * A route's validators are compiled at its first request, and its response serializers (Fastify's
 * own, fast-json-stringify) at its first answer of each status, not when the server starts:
 * compiling every route's schemas took ≈ 0.25 s of CPU at each start (generated code per schema),
 * and a server answers only some of its routes (a test server a handful).
 */
export function strictBodyValidator(): NonNullable<FastifyServerOptions['schemaController']> {
  const pooled: ValidatorFactory = AjvCompiler();
  return {
    compilersFactory: {
      buildValidator: (externalSchemas, options) => {
        // The ajv instances too are made at the first compile.
        let text: ValidatorCompiler | null = null;
        let json: ValidatorCompiler | null = null;
        const compile: ValidatorCompiler = (route) => {
          if (route.httpPart !== 'body') return (text ??= pooled(externalSchemas, options))(route);
          // The app's ajv runs in its default (JSON Schema) mode, never JTD.
          json ??= pooled(externalSchemas, {
            onCreate: options?.onCreate,
            plugins: options?.plugins,
            customOptions: { ...options?.customOptions, coerceTypes: false },
          });
          return json(route);
        };
        return (route) => compiledOnFirstCall(() => compile(route));
      },
      buildSerializer: (externalSchemas, options) => {
        let compile: SerializerCompiler | null = null;
        return (route) => {
          let serialize: ((data: unknown) => string) | null = null;
          return (data: unknown) => {
            serialize ??= (compile ??= fastifySerializers()(externalSchemas, options))(route);
            return serialize(data);
          };
        };
      },
    },
  };
}

let defaultSerializers: SerializerFactory | null = null;

/** Fastify's default serializer factory, loaded at the first answer with a response schema. */
function fastifySerializers(): SerializerFactory {
  defaultSerializers ??= (
    requireFromFastify('@fastify/fast-json-stringify-compiler') as () => SerializerFactory
  )();
  return defaultSerializers;
}

/**
 * A validator that compiles itself at its first call. Fastify reads `errors` after a call that
 * returns false, and hands an ajv validator (one with `schemaEnv`) the request as its parent
 * data so that it may coerce a whole query string or params object: the stand-in says it is one,
 * and passes both through.
 */
function compiledOnFirstCall(compile: () => Validator): Validator {
  let validator: Validator | null = null;
  const validate = function (this: unknown, data: unknown, dataCtx?: unknown): unknown {
    validator ??= compile();
    const result = (validator as (this: unknown, data: unknown, dataCtx?: unknown) => unknown).call(
      this,
      data,
      dataCtx,
    );
    (validate as { errors?: unknown }).errors = (validator as { errors?: unknown }).errors;
    return result;
  };
  (validate as { schemaEnv?: unknown }).schemaEnv = true;
  return validate as Validator;
}
