// Node.js client matrix: node-postgres (`pg`: Client, Pool, named prepared statements) and
// postgres.js 3.x and 4.x (`postgres`: tagged templates, sql.unsafe, transactions) against bhavstore's
// Postgres wire endpoint.
//
// Run: cd tests/clients/node && npm ci && node matrix.mjs
// Connection from BHAVSTORE_PG_HOST/PORT/USER/PASSWORD (defaults: the dev server).
// Prints `ok <name>` or `FAIL <name>: <first error line>` per check; exits 1 if any failed.

// Dates in and out are compared as calendar days: pin the process time zone so a JS Date for
// 2015-04-01 00:00 means the same instant to both drivers (pg sends local time with offset,
// postgres.js sends toISOString() as timestamptz).
process.env.TZ = 'UTC';

import pg from 'pg';
import postgres from 'postgres';
import postgres3 from 'postgres3'; // npm:postgres@^3.4

const conn = {
  host: process.env.BHAVSTORE_PG_HOST || '127.0.0.1',
  port: Number(process.env.BHAVSTORE_PG_PORT || 55432),
  user: process.env.BHAVSTORE_PG_USER || 'quant',
  password: process.env.BHAVSTORE_PG_PASSWORD || 's3cret-pa55',
  database: 'bhavstore',
};

// Reference values: what plain psql returns for ABB (scrip 500002).
const SCRIP = 500002;
const DAY = '2015-04-01';
const DAY_DATE = new Date(Date.UTC(2015, 3, 1));
const CLOSE = 1275.85;
const RSI_14 = 49.31369526637441;
const DAYS_OF_SCRIP = 67; // bhavcopy rows of 500002
const APRIL_DAYS_OF_SCRIP = 19;
const SOURCE_LINE = 2;

// Postgres type OIDs.
const INT4 = 23, INT8 = 20, FLOAT8 = 701, DATE = 1082, NUMERIC = 1700;

let failed = false;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (e) {
    failed = true;
    const msg = (e && (e.message || String(e))) || 'unknown error';
    console.log(`FAIL ${name}: ${msg.split('\n')[0]}`);
  }
}
function assert(cond, what) {
  if (!cond) throw new Error(what);
}
function isDay(d, iso) {
  return d instanceof Date && !isNaN(d) && d.toISOString().slice(0, 10) === iso;
}
const oidName = (oid) => ({ 20: 'int8', 23: 'int4', 701: 'float8', 1082: 'date', 1700: 'numeric', 25: 'text' })[oid] || String(oid);
// With a timeout, so a server that never answers fails the check instead of hanging the run.
function within(ms, p) {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), ms); })])
    .finally(() => clearTimeout(t));
}

// ---------------------------------------------------------------- node-postgres (pg)
const client = new pg.Client({ ...conn, connectionTimeoutMillis: 10000, query_timeout: 30000 });
let connected = false;
await check('pg_client_connect', async () => {
  await client.connect();
  connected = true;
});

if (connected) {
  await check('pg_simple_query_close', async () => {
    const r = await client.query(`SELECT close FROM bhavcopy WHERE scrip_code = ${SCRIP} AND trade_date = DATE '${DAY}'`);
    assert(r.rowCount === 1, `rowCount ${r.rowCount}`);
    assert(r.rows[0].close === CLOSE, `close ${r.rows[0].close}, want ${CLOSE}`);
    assert(r.fields[0].dataTypeID === FLOAT8, `close type ${oidName(r.fields[0].dataTypeID)}`);
  });

  await check('pg_param_query_int_and_string_date', async () => {
    const r = await client.query('SELECT close FROM bhavcopy WHERE scrip_code = $1 AND trade_date = $2', [SCRIP, DAY]);
    assert(r.rows.length === 1 && r.rows[0].close === CLOSE, `rows ${JSON.stringify(r.rows)}`);
  });

  await check('pg_param_js_Date_vs_trade_date', async () => {
    // pg serialises a Date as '2015-04-01T00:00:00.000+00:00' with an unspecified type.
    const r = await client.query('SELECT close FROM bhavcopy WHERE scrip_code = $1 AND trade_date = $2', [SCRIP, DAY_DATE]);
    assert(r.rows.length === 1 && r.rows[0].close === CLOSE, `rows ${JSON.stringify(r.rows)}`);
  });

  await check('pg_param_js_Date_range_count', async () => {
    const r = await client.query(
      'SELECT count(*) AS n FROM bhavcopy WHERE scrip_code = $1 AND trade_date >= $2 AND trade_date < $3',
      [SCRIP, DAY_DATE, new Date(Date.UTC(2015, 4, 1))]);
    assert(Number(r.rows[0].n) === APRIL_DAYS_OF_SCRIP, `count ${r.rows[0].n}, want ${APRIL_DAYS_OF_SCRIP}`);
  });

  await check('pg_count_is_int8', async () => {
    // pg hands int8 back as a string by design; the wire type must be int8, not numeric/text.
    const r = await client.query('SELECT count(*) AS n FROM bhavcopy WHERE scrip_code = $1', [SCRIP]);
    assert(r.fields[0].dataTypeID === INT8, `count type ${oidName(r.fields[0].dataTypeID)}, want int8`);
    assert(r.rows[0].n === String(DAYS_OF_SCRIP), `count ${JSON.stringify(r.rows[0].n)}, want "${DAYS_OF_SCRIP}"`);
  });

  await check('pg_count_column_named_count', async () => {
    // PostgreSQL names an unaliased count(*) "count"; code reads rows[0].count.
    const r = await client.query('SELECT count(*) FROM bhavcopy WHERE scrip_code = $1', [SCRIP]);
    assert(r.fields[0].name === 'count', `column name '${r.fields[0].name}', want 'count'`);
    assert(Number(r.rows[0].count) === DAYS_OF_SCRIP, `count ${r.rows[0].count}`);
  });

  await check('pg_source_line_is_int8', async () => {
    const r = await client.query('SELECT source_line FROM bhavcopy WHERE scrip_code = $1 AND trade_date = $2', [SCRIP, DAY]);
    assert(r.fields[0].dataTypeID === INT8, `source_line type ${oidName(r.fields[0].dataTypeID)}, want int8`);
    assert(Number(r.rows[0].source_line) === SOURCE_LINE, `source_line ${r.rows[0].source_line}`);
  });

  await check('pg_typed_row_price_features', async () => {
    const r = await client.query(
      'SELECT scrip_code, trade_date, close, rsi_14 FROM price_features WHERE scrip_code = $1 AND trade_date = $2', [SCRIP, DAY]);
    assert(r.rows.length === 1, `rows ${r.rows.length}`);
    const [f, row] = [r.fields, r.rows[0]];
    assert(f.map((x) => x.name).join() === 'scrip_code,trade_date,close,rsi_14', `names ${f.map((x) => x.name)}`);
    assert(f[0].dataTypeID === INT4 && f[1].dataTypeID === DATE && f[2].dataTypeID === FLOAT8 && f[3].dataTypeID === FLOAT8,
      `types ${f.map((x) => oidName(x.dataTypeID))}`);
    assert(row.scrip_code === SCRIP, `scrip_code ${row.scrip_code}`);
    assert(isDay(row.trade_date, DAY), `trade_date ${row.trade_date}`);
    assert(row.close === CLOSE, `close ${row.close}`);
    assert(Math.abs(row.rsi_14 - RSI_14) < 1e-9, `rsi_14 ${row.rsi_14}`);
  });

  await check('pg_named_prepared_statement', async () => {
    const q = { name: 'close-on', text: 'SELECT close FROM bhavcopy WHERE scrip_code = $1 AND trade_date = $2' };
    for (let i = 0; i < 3; i++) {
      const r = await client.query({ ...q, values: [SCRIP, DAY] });
      assert(r.rows.length === 1 && r.rows[0].close === CLOSE, `execution ${i}: ${JSON.stringify(r.rows)}`);
    }
  });

  await check('pg_rowmode_array', async () => {
    const r = await client.query({ text: 'SELECT scrip_code, close FROM bhavcopy WHERE scrip_code = $1 AND trade_date = $2',
      values: [SCRIP, DAY], rowMode: 'array' });
    assert(JSON.stringify(r.rows) === JSON.stringify([[SCRIP, CLOSE]]), `rows ${JSON.stringify(r.rows)}`);
  });

  await check('pg_current_user', async () => {
    const r = await client.query('SELECT current_user AS u, session_user AS s');
    assert(r.rows[0].u === conn.user && r.rows[0].s === conn.user, `current_user/session_user ${JSON.stringify(r.rows[0])}, want ${conn.user}`);
  });

  await client.end().catch(() => {});
}

await check('pg_pool_concurrent_params', async () => {
  const pool = new pg.Pool({ ...conn, max: 3, connectionTimeoutMillis: 10000, query_timeout: 30000 });
  try {
    const days = ['2015-04-01', '2015-04-06', '2015-04-07', '2015-04-08', '2015-04-09'];
    const rs = await Promise.all(days.map((d) =>
      pool.query('SELECT trade_date, close FROM bhavcopy WHERE scrip_code = $1 AND trade_date = $2', [SCRIP, d])));
    rs.forEach((r, i) => assert(r.rows.length === 1 && isDay(r.rows[0].trade_date, days[i]), `${days[i]}: ${JSON.stringify(r.rows)}`));
    assert(rs[0].rows[0].close === CLOSE, `close ${rs[0].rows[0].close}`);
    const c = await pool.query('SELECT count(*) AS n FROM price_features WHERE scrip_code = $1', [SCRIP]);
    assert(c.fields[0].dataTypeID === INT8 && Number(c.rows[0].n) === DAYS_OF_SCRIP, `count ${c.rows[0].n} type ${oidName(c.fields[0].dataTypeID)}`);
  } finally {
    await pool.end();
  }
});

// ---------------------------------------------------------------- postgres.js
// Both majors: 3.4.x (what most applications pin; fetches array types from pg_type on connect)
// and 4.x. Default options (prepare: true, fetch_types: true), as applications use them.
async function postgresjs(p, postgres) {
  const sql = postgres({ ...conn, username: conn.user, connect_timeout: 10, idle_timeout: 1, max: 2, onnotice: () => {} });

  await check(`${p}_template_params`, async () => {
    const rows = await within(30000, sql`SELECT close FROM bhavcopy WHERE scrip_code = ${SCRIP} AND trade_date = ${DAY}`);
    assert(rows.length === 1 && rows[0].close === CLOSE, `rows ${JSON.stringify(rows)}`);
  });

  await check(`${p}_js_Date_vs_trade_date`, async () => {
    // postgres.js sends a Date as timestamptz (oid 1184), '2015-04-01T00:00:00.000Z'.
    const rows = await within(30000, sql`SELECT close FROM bhavcopy WHERE scrip_code = ${SCRIP} AND trade_date = ${DAY_DATE}`);
    assert(rows.length === 1 && rows[0].close === CLOSE, `rows ${JSON.stringify(rows)}`);
  });

  await check(`${p}_js_Date_range_count`, async () => {
    const rows = await within(30000, sql`SELECT count(*) AS n FROM bhavcopy WHERE scrip_code = ${SCRIP}
      AND trade_date >= ${DAY_DATE} AND trade_date < ${new Date(Date.UTC(2015, 4, 1))}`);
    assert(Number(rows[0].n) === APRIL_DAYS_OF_SCRIP, `count ${rows[0].n}, want ${APRIL_DAYS_OF_SCRIP}`);
  });

  await check(`${p}_typed_results`, async () => {
    const rows = await within(30000, sql`SELECT scrip_code, trade_date, close, rsi_14, count(*) OVER () AS n
      FROM price_features WHERE scrip_code = ${SCRIP} AND trade_date = ${DAY}`);
    assert(rows.length === 1, `rows ${rows.length}`);
    const types = Object.fromEntries(rows.columns.map((c) => [c.name, c.type]));
    assert(types.scrip_code === INT4 && types.trade_date === DATE && types.close === FLOAT8 && types.n === INT8,
      `column types ${JSON.stringify(Object.fromEntries(Object.entries(types).map(([k, v]) => [k, oidName(v)])))}`);
    const r = rows[0];
    assert(r.scrip_code === SCRIP && typeof r.close === 'number' && r.close === CLOSE, `row ${JSON.stringify(r)}`);
    assert(isDay(r.trade_date, DAY), `trade_date ${r.trade_date}`);
    assert(Math.abs(r.rsi_14 - RSI_14) < 1e-9, `rsi_14 ${r.rsi_14}`);
    assert(r.n === '1', `count(*) OVER () ${JSON.stringify(r.n)} (int8 arrives as string in postgres.js)`);
  });

  await check(`${p}_count_int8`, async () => {
    const rows = await within(30000, sql`SELECT count(*) FROM bhavcopy WHERE scrip_code = ${SCRIP}`);
    assert(rows.columns[0].type === INT8, `count type ${oidName(rows.columns[0].type)}, want int8`);
    assert(rows.columns[0].name === 'count', `count column name '${rows.columns[0].name}', want 'count'`);
    assert(Number(rows[0].count) === DAYS_OF_SCRIP, `count ${rows[0].count}`);
  });

  await check(`${p}_unsafe_with_params`, async () => {
    const rows = await within(30000, sql.unsafe('SELECT close, source_line FROM bhavcopy WHERE scrip_code = $1 AND trade_date = $2', [SCRIP, DAY]));
    assert(rows.length === 1 && rows[0].close === CLOSE, `rows ${JSON.stringify(rows)}`);
    assert(rows.columns[1].type === INT8, `source_line type ${oidName(rows.columns[1].type)}, want int8`);
    assert(Number(rows[0].source_line) === SOURCE_LINE, `source_line ${rows[0].source_line}`);
  });

  await check(`${p}_unsafe_simple`, async () => {
    // No parameters: a plain (multi-statement capable) simple query.
    const rows = await within(30000, sql.unsafe(`SELECT close FROM price_features WHERE scrip_code = ${SCRIP} AND trade_date = '${DAY}'`));
    assert(rows.length === 1 && rows[0].close === CLOSE, `rows ${JSON.stringify(rows)}`);
  });

  await check(`${p}_read_only_transaction`, async () => {
    const rows = await within(30000, sql.begin('read only', (tx) => tx`SELECT close FROM bhavcopy WHERE scrip_code = ${SCRIP} AND trade_date = ${DAY}`));
    assert(rows.length === 1 && rows[0].close === CLOSE, `rows ${JSON.stringify(rows)}`);
  });

  await sql.end({ timeout: 2 }).catch(() => {});
}

await postgresjs('postgresjs3', postgres3);
await postgresjs('postgresjs4', postgres);
process.exit(failed ? 1 : 0);
