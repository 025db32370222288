// JDBC client matrix: pgjdbc against bhavstore's Postgres wire endpoint, the way Java tools and
// DBeaver / IntelliJ (DataGrip) use it: typed PreparedStatement reads, ResultSet types, and the
// DatabaseMetaData calls their schema browsers make (each one is a pg_catalog query).
//
// Run (Java 17 single-file source launcher, no build tool):
//   java -cp /usr/share/java/postgresql.jar tests/clients/jdbc/Matrix.java
// Connection from BHAVSTORE_PG_HOST/PORT/USER/PASSWORD (defaults: the dev server).
// Prints `ok <name>` or `FAIL <name>: <first error line>` per check; exits 1 if any failed.

import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.Date;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;

public class Matrix {
    // Reference values: what plain psql returns for ABB (scrip 500002).
    static final int SCRIP = 500002;
    static final LocalDate DAY = LocalDate.of(2015, 4, 1);
    static final double CLOSE = 1275.85;
    static final long SOURCE_LINE = 2L;
    static final long DAYS_OF_SCRIP = 67L; // bhavcopy rows of 500002, 2015-01..2015-05
    static final long APRIL_DAYS_OF_SCRIP = 19L; // of them in April 2015
    static final double RSI_14 = 49.31369526637441; // price_features.rsi_14 on 2015-04-01

    interface Check {
        void run() throws Exception;
    }

    static boolean failed = false;
    static Connection conn;

    static void check(String name, Check c) {
        try {
            c.run();
            System.out.println("ok " + name);
        } catch (Throwable t) {
            failed = true;
            String msg = t.getMessage() == null ? t.toString() : t.getClass().getSimpleName() + ": " + t.getMessage();
            System.out.println("FAIL " + name + ": " + msg.lines().findFirst().orElse(""));
        }
    }

    static void require(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    static String env(String k, String d) {
        String v = System.getenv(k);
        return v == null || v.isEmpty() ? d : v;
    }

    /** All rows of a ResultSet as label -> value maps (labels lower-cased). */
    static List<Map<String, Object>> rows(ResultSet rs) throws SQLException {
        try (rs) {
            ResultSetMetaData md = rs.getMetaData();
            List<Map<String, Object>> out = new ArrayList<>();
            while (rs.next()) {
                Map<String, Object> r = new HashMap<>();
                for (int i = 1; i <= md.getColumnCount(); i++) r.put(md.getColumnLabel(i).toLowerCase(), rs.getObject(i));
                out.add(r);
            }
            return out;
        }
    }

    static Set<String> column(List<Map<String, Object>> rows, String label) {
        Set<String> s = new HashSet<>();
        for (Map<String, Object> r : rows) s.add(String.valueOf(r.get(label)));
        return s;
    }

    static Set<String> labels(ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        Set<String> s = new HashSet<>();
        for (int i = 1; i <= md.getColumnCount(); i++) s.add(md.getColumnLabel(i).toUpperCase());
        return s;
    }

    /** A metadata ResultSet must carry the JDBC-specified column labels; returns its rows. */
    static List<Map<String, Object>> metaRows(ResultSet rs, String... requiredLabels) throws SQLException {
        Set<String> have = labels(rs);
        for (String l : requiredLabels) require(have.contains(l), "result lacks column " + l + " (has " + have + ")");
        return rows(rs);
    }

    static double closeOf(PreparedStatement ps) throws SQLException {
        try (ResultSet rs = ps.executeQuery()) {
            require(rs.next(), "no row");
            Object o = rs.getObject(1);
            require(o instanceof Double, "close getObject is " + (o == null ? "null" : o.getClass().getName()) + ", want Double");
            double v = rs.getDouble(1);
            require(!rs.next(), "more than one row");
            return v;
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + env("BHAVSTORE_PG_HOST", "127.0.0.1") + ":" + env("BHAVSTORE_PG_PORT", "55432") + "/bhavstore";
        Properties p = new Properties();
        p.setProperty("user", env("BHAVSTORE_PG_USER", "quant"));
        p.setProperty("password", env("BHAVSTORE_PG_PASSWORD", "s3cret-pa55"));
        p.setProperty("sslmode", "disable");
        p.setProperty("connectTimeout", "10");
        p.setProperty("socketTimeout", "60");
        String user = p.getProperty("user");

        check("connect", () -> {
            conn = DriverManager.getConnection(url, p);
            require(conn.isValid(5), "connection not valid");
        });
        if (conn == null) System.exit(1);

        // ---- reads -------------------------------------------------------------------------
        check("statement_select_close", () -> {
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT close FROM bhavcopy WHERE scrip_code = 500002 AND trade_date = DATE '2015-04-01'")) {
                require(rs.next(), "no row");
                require(rs.getDouble("close") == CLOSE, "close " + rs.getDouble("close") + ", want " + CLOSE);
                require(rs.getMetaData().getColumnType(1) == Types.DOUBLE, "close column type " + rs.getMetaData().getColumnTypeName(1));
            }
        });
        check("prepared_setInt_setDate", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT close FROM bhavcopy WHERE scrip_code = ? AND trade_date = ?")) {
                ps.setInt(1, SCRIP);
                ps.setDate(2, Date.valueOf(DAY));
                double v = closeOf(ps);
                require(v == CLOSE, "close " + v + ", want " + CLOSE);
            }
        });
        check("prepared_setTimestamp_vs_date", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT close FROM bhavcopy WHERE scrip_code = ? AND trade_date = ?")) {
                ps.setInt(1, SCRIP);
                ps.setTimestamp(2, Timestamp.valueOf(DAY.atStartOfDay()));
                double v = closeOf(ps);
                require(v == CLOSE, "close " + v + ", want " + CLOSE);
            }
        });
        check("prepared_setObject_LocalDate", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT close FROM bhavcopy WHERE scrip_code = ? AND trade_date = ?")) {
                ps.setInt(1, SCRIP);
                ps.setObject(2, DAY);
                double v = closeOf(ps);
                require(v == CLOSE, "close " + v + ", want " + CLOSE);
            }
        });
        check("prepared_timestamp_range_count", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT count(*) FROM bhavcopy WHERE scrip_code = ? AND trade_date >= ? AND trade_date < ?")) {
                ps.setInt(1, SCRIP);
                ps.setTimestamp(2, Timestamp.valueOf("2015-04-01 00:00:00"));
                ps.setTimestamp(3, Timestamp.valueOf("2015-05-01 00:00:00"));
                try (ResultSet rs = ps.executeQuery()) {
                    require(rs.next(), "no row");
                    require(rs.getLong(1) == APRIL_DAYS_OF_SCRIP, "count " + rs.getLong(1) + ", want " + APRIL_DAYS_OF_SCRIP);
                }
            }
        });
        check("count_is_bigint_long", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM bhavcopy WHERE scrip_code = ?")) {
                ps.setInt(1, SCRIP);
                try (ResultSet rs = ps.executeQuery()) {
                    require(rs.next(), "no row");
                    ResultSetMetaData md = rs.getMetaData();
                    require(md.getColumnType(1) == Types.BIGINT && md.getColumnTypeName(1).equals("int8"),
                            "count(*) column is " + md.getColumnTypeName(1) + " (java.sql.Types " + md.getColumnType(1) + "), want int8/BIGINT");
                    Object o = rs.getObject(1);
                    require(o instanceof Long, "getObject is " + (o == null ? "null" : o.getClass().getName()) + ", want Long");
                    require(rs.getLong(1) == DAYS_OF_SCRIP, "count " + rs.getLong(1) + ", want " + DAYS_OF_SCRIP);
                }
            }
        });
        check("count_column_named_count", () -> {
            // PostgreSQL names an unaliased count(*) column "count"; code reads rs.getLong("count").
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT count(*) FROM bhavcopy WHERE scrip_code = 500002")) {
                require(rs.next(), "no row");
                String label = rs.getMetaData().getColumnLabel(1);
                require(label.equals("count"), "count(*) column label is '" + label + "', want 'count'");
                require(rs.getLong("count") == DAYS_OF_SCRIP, "count " + rs.getLong("count"));
            }
        });
        check("source_line_getLong_is_Long", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT source_line FROM bhavcopy WHERE scrip_code = ? AND trade_date = ?")) {
                ps.setInt(1, SCRIP);
                ps.setDate(2, Date.valueOf(DAY));
                try (ResultSet rs = ps.executeQuery()) {
                    require(rs.next(), "no row");
                    require(rs.getLong(1) == SOURCE_LINE, "source_line " + rs.getLong(1) + ", want " + SOURCE_LINE);
                    Object o = rs.getObject(1);
                    require(o instanceof Long, "source_line getObject is " + (o == null ? "null" : o.getClass().getName())
                            + " (column type " + rs.getMetaData().getColumnTypeName(1) + "), want Long (int8)");
                }
            }
        });
        check("price_features_types", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT scrip_code, trade_date, close, rsi_14 FROM price_features WHERE scrip_code = ? AND trade_date = ?")) {
                ps.setInt(1, SCRIP);
                ps.setObject(2, DAY);
                try (ResultSet rs = ps.executeQuery()) {
                    require(rs.next(), "no row");
                    ResultSetMetaData md = rs.getMetaData();
                    require(md.getColumnType(1) == Types.INTEGER, "scrip_code type " + md.getColumnTypeName(1));
                    require(md.getColumnType(2) == Types.DATE, "trade_date type " + md.getColumnTypeName(2));
                    require(md.getColumnType(4) == Types.DOUBLE, "rsi_14 type " + md.getColumnTypeName(4));
                    require(rs.getObject(1) instanceof Integer && rs.getInt(1) == SCRIP, "scrip_code " + rs.getObject(1));
                    require(rs.getObject(2, LocalDate.class).equals(DAY), "trade_date " + rs.getObject(2));
                    require(rs.getDate(2).toLocalDate().equals(DAY), "trade_date getDate " + rs.getDate(2));
                    require(rs.getDouble(3) == CLOSE, "close " + rs.getDouble(3));
                    require(Math.abs(rs.getDouble(4) - RSI_14) < 1e-9, "rsi_14 " + rs.getDouble(4) + ", want " + RSI_14);
                }
            }
        });
        check("prepared_reused_server_side", () -> {
            // pgjdbc switches to a named server-side statement after prepareThreshold (5) executions.
            try (PreparedStatement ps = conn.prepareStatement("SELECT close FROM bhavcopy WHERE scrip_code = ? AND trade_date = ?")) {
                for (int i = 0; i < 8; i++) {
                    ps.setInt(1, SCRIP);
                    ps.setDate(2, Date.valueOf(DAY));
                    double v = closeOf(ps);
                    require(v == CLOSE, "execution " + i + ": close " + v);
                }
            }
        });
        check("read_only_transaction", () -> {
            // DBeaver / IntelliJ "read-only connection": autocommit off + setReadOnly -> BEGIN READ ONLY.
            conn.setAutoCommit(false);
            conn.setReadOnly(true);
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT close FROM price_features WHERE scrip_code = 500002 AND trade_date = '2015-04-01'")) {
                require(rs.next() && rs.getDouble(1) == CLOSE, "close mismatch");
            } finally {
                conn.commit();
                conn.setReadOnly(false);
                conn.setAutoCommit(true);
            }
        });
        check("connection_getSchema", () -> {
            String s = conn.getSchema(); // select current_schema()
            require("public".equals(s), "getSchema() = " + s + ", want public");
        });
        check("transaction_isolation", () -> {
            int iso = conn.getTransactionIsolation(); // SHOW TRANSACTION ISOLATION LEVEL
            require(iso == Connection.TRANSACTION_READ_COMMITTED || iso == Connection.TRANSACTION_SERIALIZABLE
                    || iso == Connection.TRANSACTION_REPEATABLE_READ, "isolation " + iso);
        });

        // ---- DatabaseMetaData (DBeaver / IntelliJ schema browsing) -------------------------
        DatabaseMetaData md = conn.getMetaData();
        check("meta_product_name_version", () -> {
            require("PostgreSQL".equals(md.getDatabaseProductName()), "product name " + md.getDatabaseProductName());
            String v = md.getDatabaseProductVersion();
            require(v != null && v.matches("\\d+(\\.\\d+)*.*"), "product version '" + v + "' is not a PostgreSQL version number");
            require(md.getDatabaseMajorVersion() >= 9, "major version " + md.getDatabaseMajorVersion());
            require(user.equals(md.getUserName()), "getUserName " + md.getUserName());
        });
        check("meta_getSchemas", () -> {
            Set<String> s = column(metaRows(md.getSchemas(), "TABLE_SCHEM", "TABLE_CATALOG"), "table_schem");
            require(s.contains("public") && s.contains("pg_catalog"), "schemas " + s);
        });
        check("meta_getSchemas_pattern", () -> {
            Set<String> s = column(metaRows(md.getSchemas(null, "pub%"), "TABLE_SCHEM"), "table_schem");
            require(s.equals(Set.of("public")), "schemas " + s);
        });
        check("meta_getCatalogs", () -> {
            Set<String> s = column(metaRows(md.getCatalogs(), "TABLE_CAT"), "table_cat");
            require(s.contains("bhavstore"), "catalogs " + s);
        });
        check("meta_getTableTypes", () -> {
            Set<String> s = column(metaRows(md.getTableTypes(), "TABLE_TYPE"), "table_type");
            require(s.contains("TABLE") && s.contains("VIEW"), "table types " + s);
        });
        check("meta_getTables_TABLE", () -> {
            List<Map<String, Object>> r = metaRows(md.getTables(null, "public", "%", new String[] {"TABLE"}),
                    "TABLE_CAT", "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE", "REMARKS");
            Set<String> names = column(r, "table_name");
            require(names.contains("price_features") && names.contains("volatility_features") && names.contains("bhavcopy"), "TABLEs " + names);
            require(column(r, "table_type").equals(Set.of("TABLE")), "types " + column(r, "table_type"));
        });
        check("meta_getTables_VIEW", () -> {
            List<Map<String, Object>> r = metaRows(md.getTables(null, "public", "%", new String[] {"VIEW"}), "TABLE_NAME", "TABLE_TYPE");
            Set<String> names = column(r, "table_name");
            require(names.contains("bhavstore_runs") && names.contains("bhavstore_versions") && !names.contains("bhavcopy"), "VIEWs " + names);
        });
        check("meta_getTables_all_has_bhavcopy", () -> {
            List<Map<String, Object>> r = metaRows(md.getTables(null, "public", "%", null), "TABLE_NAME", "TABLE_TYPE");
            Set<String> names = column(r, "table_name");
            require(names.contains("bhavcopy") && names.contains("price_features") && names.contains("bhavstore_runs"), "tables " + names);
        });
        check("meta_getColumns_price_features", () -> {
            List<Map<String, Object>> r = metaRows(md.getColumns(null, "public", "price_features", "%"),
                    "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME", "COLUMN_SIZE", "NULLABLE", "ORDINAL_POSITION", "IS_NULLABLE");
            Map<String, Map<String, Object>> byName = new HashMap<>();
            for (Map<String, Object> c : r) byName.put((String) c.get("column_name"), c);
            require(r.size() == 16, "price_features has " + r.size() + " columns, want 16: " + byName.keySet());
            require(((Number) byName.get("scrip_code").get("data_type")).intValue() == Types.INTEGER
                    && "int4".equals(byName.get("scrip_code").get("type_name")), "scrip_code " + byName.get("scrip_code"));
            require(((Number) byName.get("trade_date").get("data_type")).intValue() == Types.DATE, "trade_date " + byName.get("trade_date"));
            require(((Number) byName.get("rsi_14").get("data_type")).intValue() == Types.DOUBLE
                    && "float8".equals(byName.get("rsi_14").get("type_name")), "rsi_14 " + byName.get("rsi_14"));
            require("NO".equals(byName.get("scrip_code").get("is_nullable")), "scrip_code IS_NULLABLE " + byName.get("scrip_code").get("is_nullable"));
            require(((Number) byName.get("scrip_code").get("ordinal_position")).intValue() == 1, "scrip_code position");
        });
        check("meta_getColumns_bhavcopy_source_line", () -> {
            List<Map<String, Object>> r = metaRows(md.getColumns(null, "public", "bhavcopy", "source_line"), "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME");
            require(r.size() == 1, "rows " + r.size());
            require(((Number) r.get(0).get("data_type")).intValue() == Types.BIGINT, "source_line is " + r.get(0).get("type_name") + ", want int8/BIGINT");
        });
        check("meta_getPrimaryKeys", () -> metaRows(md.getPrimaryKeys(null, "public", "price_features"),
                "TABLE_SCHEM", "TABLE_NAME", "COLUMN_NAME", "KEY_SEQ", "PK_NAME"));
        check("meta_getImportedKeys", () -> metaRows(md.getImportedKeys(null, "public", "price_features"),
                "PKTABLE_NAME", "PKCOLUMN_NAME", "FKTABLE_NAME", "FKCOLUMN_NAME", "KEY_SEQ", "FK_NAME"));
        check("meta_getExportedKeys", () -> metaRows(md.getExportedKeys(null, "public", "bhavcopy"),
                "PKTABLE_NAME", "PKCOLUMN_NAME", "FKTABLE_NAME", "FKCOLUMN_NAME", "KEY_SEQ", "FK_NAME"));
        check("meta_getIndexInfo", () -> metaRows(md.getIndexInfo(null, "public", "price_features", false, true),
                "TABLE_NAME", "NON_UNIQUE", "INDEX_NAME", "TYPE", "COLUMN_NAME"));
        check("meta_getFunctions", () -> metaRows(md.getFunctions(null, "public", "%"),
                "FUNCTION_CAT", "FUNCTION_SCHEM", "FUNCTION_NAME", "FUNCTION_TYPE", "SPECIFIC_NAME"));
        check("meta_getFunctionColumns", () -> metaRows(md.getFunctionColumns(null, "public", "%", "%"),
                "FUNCTION_NAME", "COLUMN_NAME", "COLUMN_TYPE", "DATA_TYPE", "TYPE_NAME"));
        check("meta_getProcedures", () -> metaRows(md.getProcedures(null, "public", "%"),
                "PROCEDURE_CAT", "PROCEDURE_SCHEM", "PROCEDURE_NAME", "PROCEDURE_TYPE", "SPECIFIC_NAME"));
        check("meta_getProcedureColumns", () -> metaRows(md.getProcedureColumns(null, "public", "%", "%"),
                "PROCEDURE_NAME", "COLUMN_NAME", "COLUMN_TYPE", "DATA_TYPE"));
        check("meta_getTypeInfo", () -> {
            List<Map<String, Object>> r = metaRows(md.getTypeInfo(), "TYPE_NAME", "DATA_TYPE", "PRECISION", "NULLABLE");
            Map<String, Integer> t = new HashMap<>();
            for (Map<String, Object> row : r) t.put((String) row.get("type_name"), ((Number) row.get("data_type")).intValue());
            for (String n : List.of("int4", "int8", "float8", "date", "text", "bool", "timestamptz"))
                require(t.containsKey(n), "type " + n + " missing from getTypeInfo (" + t.size() + " types)");
            require(t.get("int8") == Types.BIGINT && t.get("date") == Types.DATE, "int8/date DATA_TYPE " + t.get("int8") + "/" + t.get("date"));
        });
        check("meta_getUDTs", () -> metaRows(md.getUDTs(null, "public", "%", null),
                "TYPE_CAT", "TYPE_SCHEM", "TYPE_NAME", "CLASS_NAME", "DATA_TYPE"));
        check("meta_getClientInfoProperties", () -> {
            Set<String> s = column(metaRows(md.getClientInfoProperties(), "NAME", "MAX_LEN"), "name");
            require(s.contains("ApplicationName"), "client info properties " + s);
        });
        check("meta_getTablePrivileges", () -> metaRows(md.getTablePrivileges(null, "public", "price_features"),
                "TABLE_NAME", "GRANTEE", "PRIVILEGE"));
        check("meta_getBestRowIdentifier", () -> metaRows(md.getBestRowIdentifier(null, "public", "price_features", DatabaseMetaData.bestRowSession, true),
                "COLUMN_NAME", "DATA_TYPE"));
        check("meta_getVersionColumns", () -> metaRows(md.getVersionColumns(null, "public", "price_features"),
                "COLUMN_NAME", "DATA_TYPE"));

        try {
            conn.close();
        } catch (SQLException ignored) {
        }
        System.exit(failed ? 1 : 0);
    }
}
