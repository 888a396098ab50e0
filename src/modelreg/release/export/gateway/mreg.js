// mreg's API gateway for nginx (njs): routes each request exactly as modelreg.serving.Router
// does, from the routing table `mreg release export --format nginx-njs` writes.
//
// The bucketing contract (docs/release.md): bucket = first 8 bytes of SHA-256(SEED ":" KEY),
// big-endian, mod 1,000,000; the canary takes the buckets below weight (in hundredths of a
// percent) x 100. Rules are tried in order and the first that holds decides.
//
// nginx parses the tables (js_preload_object) once per configuration load, so a request
// only looks things up and hashes one key. A table whose JSON does not parse makes
// `nginx -s reload` fail and the running workers keep the last good configuration; a table
// that parses but is not a valid routing table is refused here, per request, and the
// fallback table (the last one mreg validated and wrote) answers; if that is damaged too,
// the stable version this file was written for answers. `status` says which one is in force.
//
// This file is generated: @CONSTANTS@ below are filled in by mreg, one copy per model.
import crypto from 'crypto';

const MODEL = @MODEL@;
const UPSTREAMS = @UPSTREAMS@; // upstream name -> 1: the only ones a table may name
const DEFAULT = @DEFAULT@; // [upstream, variant, version]: when both tables are damaged
const TWO32 = 967296; // 2^32 mod 1,000,000
const SEED = /^[0-9a-f]{32}$/;

function own(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

function isObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function target(t) {
  return isObject(t) && typeof t.version === 'string' && typeof t.upstream === 'string' &&
    own(UPSTREAMS, t.upstream);
}

function validRule(rule) {
  if (!isObject(rule) || typeof rule.label !== 'string') return false;
  if (rule.users !== null && !isObject(rule.users)) return false;
  if (!Array.isArray(rule.when)) return false;
  for (let i = 0; i < rule.when.length; i++) {
    const c = rule.when[i];
    if (!isObject(c) || (c.header !== null && typeof c.header !== 'string')) return false;
    if (c.op === 'in') {
      if (!isObject(c.value)) return false;
    } else if ((c.op !== 'eq' && c.op !== 'prefix') || typeof c.value !== 'string') {
      return false;
    }
  }
  if (rule.pin === 'canary' || rule.pin === 'baseline') return true;
  return rule.pin === null && Number.isInteger(rule.threshold) && rule.threshold >= 0 &&
    rule.threshold <= 1000000;
}

/** True when `t` is a routing table of this model that this code can follow. */
function valid(t) {
  if (!isObject(t) || t.mreg !== 1 || t.model !== MODEL || !Number.isInteger(t.generation)) {
    return false;
  }
  if (t.mode === 'fixed') {
    return target(t.fixed) && (t.fixed.variant === 'canary' || t.fixed.variant === 'baseline');
  }
  if (t.mode !== 'split' || typeof t.seed !== 'string' || !SEED.test(t.seed)) return false;
  if (!target(t.canary) || !target(t.baseline) || !Number.isInteger(t.threshold)) return false;
  if (t.threshold < 0 || t.threshold > 1000000) return false;
  if (typeof t.user !== 'string' || (t.key !== null && typeof t.key !== 'string')) return false;
  if (!Array.isArray(t.rules)) return false;
  for (let i = 0; i < t.rules.length; i++) {
    if (!validRule(t.rules[i])) return false;
  }
  return true;
}

function header(r, name) {
  const v = r.headersIn[name];
  return v === undefined ? null : v;
}

function bucket(seed, key) {
  if (key === null) return Math.floor(Math.random() * 1000000); // no key: at random
  const h = crypto.createHash('sha256').update(seed + ':' + key).digest();
  return ((h.readUInt32BE(0) % 1000000) * TWO32 + h.readUInt32BE(4)) % 1000000;
}

function holds(rule, uid, r) {
  if (rule.users !== null && (uid === null || !own(rule.users, uid))) return false;
  const when = rule.when;
  for (let i = 0; i < when.length; i++) {
    const c = when[i];
    const v = c.header === null ? uid : header(r, c.header);
    if (v === null) return false;
    if (c.op === 'eq') {
      if (v !== c.value) return false;
    } else if (c.op === 'in') {
      if (!own(c.value, v)) return false;
    } else if (!v.startsWith(c.value)) {
      return false;
    }
  }
  return true;
}

function side(t, variant) {
  const s = variant === 'canary' ? t.canary : t.baseline;
  return [s.upstream, variant, s.version];
}

/** [upstream, variant, version] for the request under table `t` (already validated). */
function decide(t, r) {
  if (t.mode === 'fixed') return [t.fixed.upstream, t.fixed.variant, t.fixed.version];
  const uid = header(r, t.user);
  const key = t.key === null ? null : t.key === t.user ? uid : header(r, t.key);
  for (let i = 0; i < t.rules.length; i++) {
    const rule = t.rules[i];
    if (holds(rule, uid, r)) {
      if (rule.pin !== null) return side(t, rule.pin);
      return side(t, bucket(t.seed, key) < rule.threshold ? 'canary' : 'baseline');
    }
  }
  return side(t, bucket(t.seed, key) < t.threshold ? 'canary' : 'baseline');
}

/** The table in force: the routing table, else the fallback, else null (DEFAULT). */
function table() {
  if (valid(mreg_table_@ID@)) return [mreg_table_@ID@, 'routing'];
  if (valid(mreg_fallback_@ID@)) return [mreg_fallback_@ID@, 'fallback'];
  return [null, 'default'];
}

/** js_set: "UPSTREAM VARIANT VERSION" for this request. */
function route(r) {
  let out = null;
  try {
    const t = table()[0];
    if (t !== null) out = decide(t, r);
  } catch (e) {
    out = null;
  }
  return (out === null ? DEFAULT : out).join(' ');
}

/** js_set: which table is in force, as JSON (the gateway's /.mreg/status). */
function status(r) {
  const found = table();
  const t = found[0];
  return JSON.stringify({
    model: MODEL,
    table: found[1],
    generation: t === null ? null : t.generation,
    release: t === null ? null : t.release,
    state: t === null ? null : t.state,
  }) + '\n';
}

export default { route, status };
