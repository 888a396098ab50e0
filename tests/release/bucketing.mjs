// A second implementation of mreg's routing, for Node.js, written from the text of
// docs/release.md ("Bucketing (for gateways in other languages)") and nothing else: what a
// gateway in another language would write. It uses only Node's built-in modules.
//
//   node tests/release/bucketing.mjs VECTORS.json           # print what this code decides
//   node tests/release/bucketing.mjs --check VECTORS.json   # compare with the expectations
//
// tests/release/test_bucketing.py runs it over tests/release/bucketing_vectors.json and
// asserts that every bucket, variant, weight and rule agrees with the Python router.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

// -- text -----------------------------------------------------------------------------------

// "Whitespace ... means the characters Python's str.isspace() accepts" (not JavaScript's \s).
const WS = '[\\u0009-\\u000D\\u001C-\\u001F\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A' +
  '\\u2028\\u2029\\u202F\\u205F\\u3000]';
const TRIM = new RegExp(`^${WS}+|${WS}+$`, 'g');
const trim = (s) => s.replace(TRIM, '');

const NAME = '[A-Za-z0-9][A-Za-z0-9_.-]{0,63}';
const ATTR = '[A-Za-z_][A-Za-z0-9_.-]{0,63}';
const NAME_RE = new RegExp(`^${NAME}$`);
const ATTR_RE = new RegExp(`^${ATTR}$`);
const SEED_RE = /^[0-9a-f]{32}$/;

class Invalid extends Error {}

/** Code points of a UTF-16 string: a high surrogate followed by a low one is one code point,
 * every other surrogate code unit is a (lone) code point of its own. */
function codePoints(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    let cp = s.charCodeAt(i);
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < s.length) {
      const lo = s.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        cp = 0x10000 + (cp - 0xd800) * 0x400 + (lo - 0xdc00);
        i++;
      }
    }
    out.push(cp);
  }
  return out;
}

/** UTF-8 of each code point; a lone surrogate as three bytes like any code point below
 * U+10000 (Python's surrogatepass), never replaced by U+FFFD. */
export function keyBytes(key) {
  const out = [];
  for (const cp of codePoints(key)) {
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) {
      out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    } else {
      out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f),
        0x80 | (cp & 0x3f));
    }
  }
  return Buffer.from(out);
}

/** A request value as text, "as Python's str() does"; null when absent. */
function asText(v) {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v).toString();
  return String(v); // a float: the same digits as Python for the usual cases (2.5)
}

// -- weights ----------------------------------------------------------------------------------

const DECIMAL_RE = /^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$/;

/** W, the weight in hundredths of a percent (0..10000), or null when refused. */
export function parseWeight(p) {
  if (typeof p === 'number') {
    if (!(p >= 0 && p <= 100)) return null; // NaN too
    if (Number.isInteger(p)) return p * 100 + 0; // + 0: no -0
    const k = Math.round(p * 100);
    return k / 100 === p ? k + 0 : null;
  }
  if (typeof p !== 'string') return null;
  let text = trim(p);
  if (text.endsWith('%')) text = text.slice(0, -1);
  text = trim(text);
  if (!DECIMAL_RE.test(text)) return null;
  return exactHundredths(text);
}

/** An exact decimal numeral (DECIMAL_RE) × 100 as an integer from 0 to 10000, else null. */
function exactHundredths(text) {
  let s = text;
  let negative = false;
  if (s[0] === '+' || s[0] === '-') {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  let exp = 0n;
  const e = s.search(/[eE]/);
  if (e >= 0) {
    exp = BigInt(s.slice(e + 1));
    s = s.slice(0, e);
  }
  const [whole, frac = ''] = s.split('.');
  const digits = (whole + frac).replace(/^0+/, '');
  if (digits === '') return 0; // zero, whatever the sign and exponent
  const shift = exp - BigInt(frac.length) + 2n; // value × 100 = digits × 10^shift
  let hundredths;
  if (shift >= 0n) {
    if (shift > 5n) return null; // at least 10^6 hundredths: above 100%
    hundredths = BigInt(digits) * 10n ** shift;
  } else {
    const cut = -shift;
    if (cut >= BigInt(digits.length)) return null; // a nonzero value below 0.01 in magnitude
    const n = Number(cut);
    if (!/^0+$/.test(digits.slice(-n))) return null; // finer than 0.01
    hundredths = BigInt(digits.slice(0, -n));
  }
  if (negative || hundredths > 10000n) return null;
  return Number(hundredths);
}

// -- rules ------------------------------------------------------------------------------------

/** A rule value: a string or a number (not a boolean), as text; 1-256 code points, none
 * below U+0020, none a surrogate. */
function ruleValue(v) {
  if (typeof v !== 'string' && typeof v !== 'number') throw new Invalid(`bad value ${v}`);
  const text = asText(v);
  const cps = codePoints(text);
  if (cps.length < 1 || cps.length > 256) throw new Invalid('value length');
  if (cps.some((cp) => cp < 0x20 || (cp >= 0xd800 && cp <= 0xdfff))) {
    throw new Invalid('value characters');
  }
  return text;
}

const unique = (xs) => [...new Set(xs)];

function ruleValues(list) {
  if (list.length < 1 || list.length > 100000) throw new Invalid('1 to 100,000 values');
  return unique(list.map(ruleValue));
}

/** Python's truth: null, false, 0, "", [] and {} are false. */
function falsy(v) {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v).length === 0;
}

const isMapping = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

function makeRule({ name, users, when, variant, weight }) {
  if (users.length === 0 && when.length === 0) throw new Invalid('a rule needs a condition');
  if ((variant === null) === (weight === null)) throw new Invalid('exactly one outcome');
  if (variant !== null && variant !== 'canary' && variant !== 'baseline') {
    throw new Invalid(`bad variant ${variant}`);
  }
  const keys = when.map((t) => t[0]);
  if (new Set(keys).size !== keys.length) throw new Invalid('each attribute once');
  if (name !== '' && !NAME_RE.test(name)) throw new Invalid(`bad name ${name}`);
  when.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { name, users, when, variant, weight };
}

/** A manifest rule (a mapping or a one-line text) as {name, users, when: [[key, op, values]],
 * variant, weight: W}; throws Invalid. */
export function parseRule(item) {
  if (typeof item === 'string') return parseText(item);
  if (!isMapping(item)) throw new Invalid('a rule is a mapping or a text');
  for (const k of Object.keys(item)) {
    if (!['name', 'users', 'when', 'variant', 'weight'].includes(k)) {
      throw new Invalid(`unknown field ${k}`);
    }
  }
  const users = falsy(item.users) ? [] : item.users;
  const when = falsy(item.when) ? {} : item.when;
  if (!Array.isArray(users)) throw new Invalid('users is a list');
  if (users.length > 100000) throw new Invalid('too many users');
  if (!isMapping(when)) throw new Invalid('when is a mapping');
  let name = item.name ?? '';
  if (typeof name === 'number' || typeof name === 'boolean') name = asText(name);
  if (typeof name !== 'string') throw new Invalid('bad name');
  const tests = Object.keys(when).map((key) => {
    if (!ATTR_RE.test(key)) throw new Invalid(`bad attribute ${key}`);
    const test = when[key];
    if (isMapping(test)) {
      const ops = Object.keys(test);
      if (ops.length !== 1 || !['in', 'prefix'].includes(ops[0])) {
        throw new Invalid('a test is a value, {in: [...]} or {prefix: ...}');
      }
      const raw = test[ops[0]];
      const list = ops[0] === 'in' && Array.isArray(raw) ? raw : [raw];
      return [key, ops[0], ruleValues(list)];
    }
    return [key, 'eq', [ruleValue(test)]];
  });
  let weight = null;
  if (item.weight !== undefined && item.weight !== null) {
    weight = parseWeight(item.weight);
    if (weight === null) throw new Invalid('bad weight');
  }
  const variant = item.variant === undefined ? null : item.variant;
  return makeRule({ name, users: unique(users.map(ruleValue)), when: tests, variant, weight });
}

const NAMED_RE = new RegExp(`^${WS}*(${NAME}):${WS}+([\\s\\S]*)$`);
const AND_RE = new RegExp(`${WS}+and${WS}+`);
const KEY_RE = new RegExp(`^${WS}*(${ATTR})`);
const LEAD_WS_RE = new RegExp(`^${WS}*`);
const IN_RE = new RegExp(`^in${WS}+`);

/** The one-line text form, in the documented order: name, outcome, conditions, meaning. */
function parseText(text) {
  let body = text;
  const named = NAMED_RE.exec(text);
  let name = '';
  if (named && named[2].includes('->')) [, name, body] = named;
  const arrow = body.lastIndexOf('->');
  if (arrow < 0) throw new Invalid('no ->');
  const conds = trim(body.slice(0, arrow));
  const outcome = trim(body.slice(arrow + 2));
  if (conds === '') throw new Invalid('no condition');
  let variant = null;
  let weight = null;
  if (outcome === 'canary' || outcome === 'baseline') variant = outcome;
  else if (outcome.endsWith('%')) {
    weight = parseWeight(outcome);
    if (weight === null) throw new Invalid('bad percentage');
  } else throw new Invalid('bad outcome');
  let users = null;
  const when = [];
  for (const part of conds.split(AND_RE)) {
    const [key, op, value] = readCondition(part);
    if (key === 'user_id' && (op === 'eq' || op === 'in')) {
      if (users !== null) throw new Invalid('one user list');
      users = op === 'in' ? splitList(value) : [ruleValue(value)];
    } else if (op === 'in') when.push([key, 'in', splitList(value)]);
    else when.push([key, op, [ruleValue(value)]]);
  }
  return makeRule({ name, users: users ?? [], when, variant, weight });
}

/** `WS* KEY WS* OP WS* VALUE WS*`. */
function readCondition(part) {
  const k = KEY_RE.exec(part);
  if (!k) throw new Invalid(`cannot read ${part}`);
  let rest = part.slice(k[0].length);
  const gap = LEAD_WS_RE.exec(rest)[0];
  rest = rest.slice(gap.length);
  let op;
  if (rest.startsWith('^=')) [op, rest] = ['prefix', rest.slice(2)];
  else if (rest.startsWith('=')) [op, rest] = ['eq', rest.slice(1)];
  else if (gap.length > 0 && IN_RE.test(rest)) [op, rest] = ['in', rest.slice(2)];
  else throw new Invalid(`cannot read ${part}`);
  const value = trim(rest);
  if (value === '') throw new Invalid('empty value');
  return [k[1], op, value];
}

function splitList(value) {
  const items = value.split(',').map(trim);
  if (items.some((v) => v === '')) throw new Invalid('empty list item');
  return unique(items.map(ruleValue));
}

// -- routing ----------------------------------------------------------------------------------

/** The manifest's routing fields, checked: {seed, W, stickBy, shadow, rules}. */
export function compile(manifest) {
  if (!SEED_RE.test(manifest.seed)) throw new Invalid('bad seed');
  const stickBy = manifest.stick_by ?? 'user_id';
  if (!ATTR_RE.test(stickBy)) throw new Invalid('bad stick_by');
  const W = parseWeight(manifest.weight);
  if (W === null) throw new Invalid('bad weight');
  const rules = (manifest.rules ?? []).map(parseRule);
  return { seed: manifest.seed, W, stickBy, shadow: manifest.shadow === true, rules };
}

export function bucketOf(seed, key) {
  const data = Buffer.concat([Buffer.from(`${seed}:`, 'ascii'), keyBytes(key)]);
  const digest = createHash('sha256').update(data).digest();
  return Number(digest.readBigUInt64BE(0) % 1000000n);
}

const own = (attrs, name) =>
  isMapping(attrs) && Object.hasOwn(attrs, name) ? asText(attrs[name]) : null;

function userIdOf(userId, attrs) {
  const uid = asText(userId);
  return uid !== null ? uid : own(attrs, 'user_id');
}

function holds([key, op, values], userId, attrs) {
  const v = key === 'user_id' ? userIdOf(userId, attrs) : own(attrs, key);
  if (v === null) return false;
  if (op === 'prefix') {
    const have = codePoints(v);
    const want = codePoints(values[0]);
    return want.length <= have.length && want.every((cp, i) => cp === have[i]);
  }
  return values.includes(v); // whole strings (eq has one value)
}

function matches(rule, userId, attrs) {
  if (rule.users.length > 0) {
    const uid = userIdOf(userId, attrs);
    if (uid === null || !rule.users.includes(uid)) return false;
  }
  return rule.when.every((t) => holds(t, userId, attrs));
}

/** The decision for one request: {key, key_utf8, bucket, threshold, variant, reason, rule}. */
export function route(config, userId, attrs) {
  const key = config.stickBy === 'user_id' ? userIdOf(userId, attrs) : own(attrs, config.stickBy);
  const bucket = key === null ? null : bucketOf(config.seed, key);
  const out = {
    key,
    key_utf8: key === null ? null : keyBytes(key).toString('hex'),
    bucket,
    threshold: null,
    variant: 'baseline',
    reason: 'shadow',
    rule: null,
  };
  if (config.shadow) return out;
  const split = (T) => {
    const b = bucket ?? Math.floor(Math.random() * 1000000); // no key: at random
    return { ...out, threshold: T, variant: b < T ? 'canary' : 'baseline' };
  };
  for (const [i, rule] of config.rules.entries()) {
    if (!matches(rule, userId, attrs)) continue;
    const label = rule.name !== '' ? rule.name : String(i + 1);
    if (rule.variant !== null) return { ...out, variant: rule.variant, reason: 'rule', rule: label };
    return { ...split(rule.weight * 100), reason: 'rule', rule: label };
  }
  return { ...split(config.W * 100), reason: 'weight' };
}

// -- the vectors --------------------------------------------------------------------------------

function attempt(f) {
  try {
    return f();
  } catch (err) {
    if (err instanceof Invalid) return null;
    throw err;
  }
}

export function decideAll(doc) {
  return {
    routing: doc.routing.map((v) => route(compile(v), v.user_id, v.attributes)),
    weights: doc.weights.map((w) => parseWeight(w.weight)),
    rules: doc.rules.map((r) => attempt(() => parseRule(r.rule))),
  };
}

function main(argv) {
  const check = argv[0] === '--check';
  const path = argv[check ? 1 : 0];
  const doc = JSON.parse(readFileSync(path, 'utf8'));
  const got = decideAll(doc);
  if (!check) {
    process.stdout.write(`${JSON.stringify(got)}\n`);
    return 0;
  }
  const bad = [];
  doc.routing.forEach((v, i) => {
    if (JSON.stringify(got.routing[i]) !== JSON.stringify(v.expected)) bad.push(v.name);
  });
  doc.weights.forEach((w, i) => {
    if (got.weights[i] !== w.hundredths) bad.push(`weight ${JSON.stringify(w.weight)}`);
  });
  doc.rules.forEach((r, i) => {
    if (JSON.stringify(got.rules[i]) !== JSON.stringify(r.parsed)) {
      bad.push(`rule ${JSON.stringify(r.rule)}`);
    }
  });
  const total = doc.routing.length + doc.weights.length + doc.rules.length;
  console.log(`${total - bad.length} of ${total} vectors agree`);
  for (const b of bad) console.log(`differs: ${b}`);
  return bad.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
