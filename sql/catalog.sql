-- The catalog introspection query (not installed; compiled into the extension).
-- Returns one json value shaped like sqlchat_core::Catalog, for every table, view, materialized view,
-- foreign table and partitioned table outside the system schemas and sqlchat's own. It is NOT
-- filtered by privileges: the extension caches it per backend and filters on every call. The comment
-- line "-- only the relations in $1" is where the extension adds a condition to reload some relations.
SELECT json_build_object('tables', coalesce(json_agg(t ORDER BY t.schema, t.name), '[]'::json))::text
FROM (
    SELECT
        c.oid::int8 AS oid,
        n.nspname AS schema,
        c.relname AS name,
        CASE c.relkind
            WHEN 'v' THEN 'view'
            WHEN 'm' THEN 'materialized_view'
            WHEN 'f' THEN 'foreign_table'
            WHEN 'p' THEN 'partitioned_table'
            ELSE 'table'
        END AS kind,
        obj_description(c.oid, 'pg_class') AS comment,
        greatest(c.reltuples, -1)::float8 AS row_estimate,
        (
            SELECT coalesce(json_agg(json_build_object(
                'name', a.attname,
                'data_type', format_type(a.atttypid, a.atttypmod),
                'category', coalesce(bt.typcategory, ty.typcategory),
                'not_null', a.attnotnull,
                'default', pg_get_expr(d.adbin, d.adrelid),
                'default_refs', coalesce((
                    SELECT json_agg(ra.attname)
                    FROM pg_depend dep
                    JOIN pg_attribute ra ON ra.attrelid = dep.refobjid AND ra.attnum = dep.refobjsubid
                    WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid
                      AND dep.refobjid = c.oid AND dep.refobjsubid > 0
                ), '[]'::json),
                'comment', col_description(c.oid, a.attnum),
                'enum_labels', coalesce((
                    SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)
                    FROM pg_enum e WHERE e.enumtypid = coalesce(bt.oid, ty.oid)
                ), '[]'::json),
                'unique', EXISTS (
                    SELECT FROM pg_index i
                    WHERE i.indrelid = c.oid AND i.indisunique AND i.indnatts = 1 AND i.indkey[0] = a.attnum
                )
            ) ORDER BY a.attnum), '[]'::json)
            FROM pg_attribute a
            JOIN pg_type ty ON ty.oid = a.atttypid
            LEFT JOIN pg_type bt ON ty.typtype = 'd' AND bt.oid = ty.typbasetype
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        ) AS columns,
        coalesce((
            SELECT json_agg(a.attname ORDER BY k.ord)
            FROM pg_constraint pk
            CROSS JOIN LATERAL unnest(pk.conkey) WITH ORDINALITY AS k(attnum, ord)
            JOIN pg_attribute a ON a.attrelid = pk.conrelid AND a.attnum = k.attnum
            WHERE pk.conrelid = c.oid AND pk.contype = 'p'
        ), '[]'::json) AS primary_key,
        coalesce((
            SELECT json_agg(json_build_object(
                'columns', (SELECT json_agg(a.attname ORDER BY k.ord)
                            FROM unnest(fk.conkey) WITH ORDINALITY AS k(attnum, ord)
                            JOIN pg_attribute a ON a.attrelid = fk.conrelid AND a.attnum = k.attnum),
                'ref_schema', rn.nspname,
                'ref_table', rc.relname,
                'ref_columns', (SELECT json_agg(a.attname ORDER BY k.ord)
                                FROM unnest(fk.confkey) WITH ORDINALITY AS k(attnum, ord)
                                JOIN pg_attribute a ON a.attrelid = fk.confrelid AND a.attnum = k.attnum)
            ) ORDER BY fk.conname)
            FROM pg_constraint fk
            JOIN pg_class rc ON rc.oid = fk.confrelid
            JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE fk.conrelid = c.oid AND fk.contype = 'f'
        ), '[]'::json) AS foreign_keys
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')
      AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'sqlchat')
      AND n.nspname NOT LIKE 'pg\_temp\_%' AND n.nspname NOT LIKE 'pg\_toast\_temp\_%'
      -- only the relations in $1 (when reloading those that changed)
) t
