import { findExecutable, NODE_ENV_ALLOW, PYTHON_ENV_ALLOW } from '../runner/index.js';

/**
 * npm settings an install may take from the server's environment: where to fetch from and how
 * (registries, scoped registries, their credentials `//host/:_authToken`, TLS, proxies, retries),
 * nothing that makes npm run a program (`git`, `script_shell`, `node_options`, …).
 */
const NPM_FETCH_CONFIG =
  /^npm_config_(registry|@[^:]+:registry|\/\/.+|ca|cafile|cert|key|strict_ssl|proxy|https_proxy|noproxy|no_proxy|local_address|maxsockets|fetch_retries|fetch_retry_factor|fetch_retry_mintimeout|fetch_retry_maxtimeout|fetch_timeout|prefer_offline|prefer_online|offline|userconfig)$/i;

/**
 * pip settings an install may take from the server's environment: where to fetch from and how
 * (indexes, find-links, trusted hosts, certificates, proxy, timeouts, which distributions), and
 * pip's config file; nothing that moves where pip installs.
 */
const PIP_FETCH_CONFIG =
  /^(PIP_(INDEX_URL|EXTRA_INDEX_URL|FIND_LINKS|NO_INDEX|TRUSTED_HOST|CERT|CLIENT_CERT|PROXY|TIMEOUT|DEFAULT_TIMEOUT|RETRIES|CONFIG_FILE|ONLY_BINARY|NO_BINARY|PREFER_BINARY|DISABLE_PIP_VERSION_CHECK|KEYRING_PROVIDER|CONSTRAINT)|XDG_CONFIG_HOME)$/;

/**
 * The environment npm installs get from `env` (the server's): what a Node run gets (PATH,
 * HOME, locale, TZ, temp dirs, proxies, CA settings) plus npm's fetch settings — never the
 * server's other variables (secrets, cloud credentials, `QUOLL_*`). `npm_config_git` is set
 * to a program that always fails, so no git dependency is cloned, whatever an `.npmrc` of a
 * cloned repository or of the environment says (the environment beats a project's `.npmrc`):
 * npm would run a cloned repository's `prepare` script, and its own `.npmrc` could name any
 * program as git.
 */
export function npmInstallEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (NODE_ENV_ALLOW.test(k) || NPM_FETCH_CONFIG.test(k)) out[k] = v;
  }
  out.npm_config_git = findExecutable('false', '/usr/bin:/bin') ?? '/bin/false';
  return out;
}

/**
 * The environment pip installs get from `env` (the server's): what a Python run gets (PATH,
 * HOME, locale, TZ, temp dirs, proxies, CA settings) plus pip's fetch settings. An sdist's
 * build backend is arbitrary code and sees all of it, so nothing else passes.
 */
export function pipInstallEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (PYTHON_ENV_ALLOW.test(k) || PIP_FETCH_CONFIG.test(k)) out[k] = v;
  }
  return out;
}
