"""A generated Supabase-shaped cluster dump, as `pg_dumpall` writes it: roles, `\\connect`, three databases.

The `postgres` database has the `auth` schema with `auth.uid()`, RLS policies that use it, grants to
`anon`/`authenticated`/`service_role`, extensions a stock Postgres lacks (`pg_graphql`, `supabase_vault`) and an
object that needs one, a config table's data for the missing extension, a trigger, sequences and foreign keys into
`auth.users`. `analytics` holds one table of its own.
"""

import gzip
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_TIME = datetime(2026, 1, 20, tzinfo=UTC)
ROLES = ["anon", "authenticated", "authenticator", "dashboard_user", "postgres", "service_role", "supabase_admin",
         "supabase_auth_admin"]  # fmt: skip
USER_TABLES = ["auth.users", "public.audit_log", "public.profiles", "public.todos"]


def user_id(n: int) -> str:
    return str(uuid.UUID(int=n))


def _header(name: str, kind: str, schema: str, owner: str, data: bool = False) -> str:
    prefix = "Data for " if data else ""
    return f"--\n-- {prefix}Name: {name}; Type: {kind}; Schema: {schema}; Owner: {owner}\n--\n\n"


_PREAMBLE = """SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

"""


def _db_start(name: str, restrict: str) -> str:
    return (
        f'--\n-- Database "{name}" dump\n--\n\n'
        f"\\connect {name}\n\n"
        f"\\restrict {restrict}\n\n"
        "--\n-- PostgreSQL database dump\n--\n\n"
        "-- Dumped from database version 15.8\n-- Dumped by pg_dump version 15.8\n\n" + _PREAMBLE
    )


def _db_end(restrict: str) -> str:
    return f"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict {restrict}\n\n"


def cluster_dump_text(rows: int = 50, started: str | None = None) -> str:
    """The dump's text; `rows` users, each with a profile and two todos (so `3 * rows` audit rows)."""
    out = ["--\n-- PostgreSQL database cluster dump\n--\n\n"]
    if started:
        out.append(f"-- Started on {started}\n\n")
    out.append("SET default_transaction_read_only = off;\n\nSET client_encoding = 'UTF8';\n")
    out.append("SET standard_conforming_strings = on;\n\n--\n-- Roles\n--\n\n")
    for role in ROLES:
        login = "LOGIN" if role in ("authenticator", "postgres", "supabase_admin") else "NOLOGIN"
        superuser = "SUPERUSER" if role == "supabase_admin" else "NOSUPERUSER"
        out.append(f"CREATE ROLE {role};\n")
        out.append(f"ALTER ROLE {role} WITH {superuser} INHERIT NOCREATEROLE NOCREATEDB {login} NOREPLICATION "
                   "NOBYPASSRLS;\n")  # fmt: skip
    out.append("ALTER ROLE anon SET statement_timeout TO '3s';\n\n")
    out.append("--\n-- User Configurations\n--\n\n\n--\n-- Role memberships\n--\n\n")
    out.append("GRANT anon TO authenticator GRANTED BY postgres;\n")
    out.append("GRANT authenticated TO authenticator GRANTED BY postgres;\n")
    out.append("GRANT service_role TO authenticator GRANTED BY postgres;\n")
    out.append("GRANT supabase_auth_admin TO postgres GRANTED BY supabase_admin;\n\n\n")
    out.append("--\n-- Databases\n--\n\n")
    out.append(_db_start("template1", "t1key") + _db_end("t1key"))
    out.append(_analytics(rows))
    out.append(_postgres(rows))
    out.append("--\n-- PostgreSQL database cluster dump complete\n--\n\n")
    return "".join(out)


def _analytics(rows: int) -> str:
    out = [_header("analytics", "DATABASE", "-", "postgres")]
    out.append("CREATE DATABASE analytics WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc "
               "LOCALE = 'C.UTF-8';\n\n\nALTER DATABASE analytics OWNER TO postgres;\n\n")  # fmt: skip
    out.append(_db_start("analytics", "ankey"))
    out.append("SET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n")
    out.append(_header("page_views", "TABLE", "public", "postgres"))
    out.append("CREATE TABLE public.page_views (\n    id bigint NOT NULL,\n    path text NOT NULL,\n"
               "    created_at timestamp with time zone DEFAULT now() NOT NULL\n);\n\n\n"
               "ALTER TABLE public.page_views OWNER TO postgres;\n\n")  # fmt: skip
    out.append(_header("page_views", "TABLE DATA", "public", "postgres", data=True))
    out.append("COPY public.page_views (id, path, created_at) FROM stdin;\n")
    for n in range(1, rows + 1):
        out.append(f"{n}\t/p/{n}\t{(BASE_TIME + timedelta(minutes=n)).isoformat(sep=' ')}\n")
    out.append("\\.\n\n\n")
    out.append(_header("page_views page_views_pkey", "CONSTRAINT", "public", "postgres"))
    out.append("ALTER TABLE ONLY public.page_views\n    ADD CONSTRAINT page_views_pkey PRIMARY KEY (id);\n\n\n")
    out.append(_db_end("ankey"))
    return "".join(out)


def _postgres(rows: int) -> str:
    h = _header
    out = [_db_start("postgres", "pgkey")]
    for schema, owner in (("auth", "supabase_admin"), ("extensions", "postgres"), ("graphql", "supabase_admin"),
                          ("graphql_public", "supabase_admin"), ("vault", "supabase_admin")):  # fmt: skip
        out.append(h(schema, "SCHEMA", "-", owner))
        out.append(f"CREATE SCHEMA {schema};\n\n\nALTER SCHEMA {schema} OWNER TO {owner};\n\n")
    out.append(h("pg_graphql", "EXTENSION", "-", "-"))
    out.append("CREATE EXTENSION IF NOT EXISTS pg_graphql WITH SCHEMA graphql;\n\n\n")
    out.append(h("EXTENSION pg_graphql", "COMMENT", "-", ""))
    out.append("COMMENT ON EXTENSION pg_graphql IS 'pg_graphql: GraphQL support';\n\n\n")
    out.append(h("pgcrypto", "EXTENSION", "-", "-"))
    out.append("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;\n\n\n")
    out.append(h("supabase_vault", "EXTENSION", "-", "-"))
    out.append("CREATE EXTENSION IF NOT EXISTS supabase_vault WITH SCHEMA vault;\n\n\n")
    out.append(h("todo_status", "TYPE", "public", "postgres"))
    out.append("CREATE TYPE public.todo_status AS ENUM (\n    'open',\n    'done'\n);\n\n\n"
               "ALTER TYPE public.todo_status OWNER TO postgres;\n\n")  # fmt: skip
    out.append(h("uid()", "FUNCTION", "auth", "supabase_auth_admin"))
    out.append(
        "CREATE FUNCTION auth.uid() RETURNS uuid\n    LANGUAGE sql STABLE\n    AS $$\n"
        "  select\n  coalesce(\n    nullif(current_setting('request.jwt.claim.sub', true), ''),\n"
        "    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')\n  )::uuid\n$$;\n\n\n"
        "ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;\n\n"
        + h("FUNCTION uid()", "COMMENT", "auth", "supabase_auth_admin")
        + "COMMENT ON FUNCTION auth.uid() IS 'Deprecated; use auth.jwt() -> ''sub'' instead.';\n\n\n"
    )
    out.append(h("set_updated_at()", "FUNCTION", "public", "postgres"))
    out.append(
        "CREATE FUNCTION public.set_updated_at() RETURNS trigger\n    LANGUAGE plpgsql\n    AS $_$\nBEGIN\n"
        "  -- it's a comment inside a body; so is this /* one */\n"
        "  NEW.title := coalesce(NEW.title, E'it\\'s $$ untitled;');\n  RETURN NEW;\nEND;\n$_$;\n\n\n"
        "ALTER FUNCTION public.set_updated_at() OWNER TO postgres;\n\n"
    )
    out.append(h("graphql(text, jsonb)", "FUNCTION", "graphql_public", "supabase_admin"))
    out.append(
        'CREATE FUNCTION graphql_public.graphql("operationName" text DEFAULT NULL::text, variables jsonb DEFAULT '
        "NULL::jsonb) RETURNS jsonb\n    LANGUAGE sql\n    AS $$\n"
        "  select graphql.resolve(query := null, variables := coalesce(variables, '{}'), \"operationName\" := "
        '"operationName");\n$$;\n\n\n'
    )
    out.append("SET default_tablespace = '';\n\nSET default_table_access_method = heap;\n\n")
    out.append(h("users", "TABLE", "auth", "supabase_auth_admin"))
    out.append("CREATE TABLE auth.users (\n    id uuid NOT NULL,\n    email character varying(255),\n"
               "    created_at timestamp with time zone\n);\n\n\n"
               "ALTER TABLE auth.users OWNER TO supabase_auth_admin;\n\n")  # fmt: skip
    out.append(h("audit_log", "TABLE", "public", "postgres"))
    out.append("CREATE TABLE public.audit_log (\n    id bigint NOT NULL,\n    note text,\n"
               "    created_at timestamp with time zone DEFAULT now() NOT NULL\n);\n\n\n"
               "ALTER TABLE public.audit_log OWNER TO postgres;\n\n")  # fmt: skip
    out.append(h("gql_version", "VIEW", "public", "postgres"))
    out.append("CREATE VIEW public.gql_version AS\n SELECT graphql.get_schema_version() AS version;\n\n\n")
    out.append(h("profiles", "TABLE", "public", "postgres"))
    out.append("CREATE TABLE public.profiles (\n    id uuid NOT NULL,\n    username text,\n"
               "    created_at timestamp with time zone DEFAULT now() NOT NULL\n);\n\n\n"
               "ALTER TABLE public.profiles OWNER TO postgres;\n\n")  # fmt: skip
    out.append(h("todos", "TABLE", "public", "postgres"))
    out.append("CREATE TABLE public.todos (\n    id bigint NOT NULL,\n    user_id uuid NOT NULL,\n    title text,\n"
               "    status public.todo_status DEFAULT 'open'::public.todo_status NOT NULL,\n"
               "    created_at timestamp with time zone DEFAULT now() NOT NULL\n);\n\n\n"
               "ALTER TABLE public.todos OWNER TO postgres;\n\n")  # fmt: skip
    out.append(h("todos_id_seq", "SEQUENCE", "public", "postgres"))
    out.append("CREATE SEQUENCE public.todos_id_seq\n    START WITH 1\n    INCREMENT BY 1\n    NO MINVALUE\n"
               "    NO MAXVALUE\n    CACHE 1;\n\n\nALTER TABLE public.todos_id_seq OWNER TO postgres;\n\n")  # fmt: skip
    out.append(h("todos_id_seq", "SEQUENCE OWNED BY", "public", "postgres"))
    out.append("ALTER SEQUENCE public.todos_id_seq OWNED BY public.todos.id;\n\n\n")
    out.append(h("todos id", "DEFAULT", "public", "postgres"))
    out.append("ALTER TABLE ONLY public.todos ALTER COLUMN id SET DEFAULT "
               "nextval('public.todos_id_seq'::regclass);\n\n\n")  # fmt: skip
    out.append(h("users", "TABLE DATA", "auth", "supabase_auth_admin", data=True))
    out.append("COPY auth.users (id, email, created_at) FROM stdin;\n")
    for n in range(1, rows + 1):
        out.append(f"{user_id(n)}\tuser{n}@example.com\t{_at(n)}\n")
    out.append("\\.\n\n\n")
    out.append(h("audit_log", "TABLE DATA", "public", "postgres", data=True))
    out.append("COPY public.audit_log (id, note, created_at) FROM stdin;\n")
    for n in range(1, 3 * rows + 1):
        out.append(f"{n}\tline {n}\\twith a tab and a \\\\. inside\t{_at(n)}\n")
    out.append("\\.\n\n\n")
    out.append(h("profiles", "TABLE DATA", "public", "postgres", data=True))
    out.append("COPY public.profiles (id, username, created_at) FROM stdin;\n")
    for n in range(1, rows + 1):
        out.append(f"{user_id(n)}\tuser_{n}\t{_at(n)}\n")
    out.append("\\.\n\n\n")
    out.append(h("todos", "TABLE DATA", "public", "postgres", data=True))
    out.append("COPY public.todos (id, user_id, title, status, created_at) FROM stdin;\n")
    for n in range(1, 2 * rows + 1):
        out.append(f"{n}\t{user_id(1 + (n - 1) // 2)}\ttodo {n}\t{'done' if n % 3 == 0 else 'open'}\t{_at(n)}\n")
    out.append("\\.\n\n\n")
    out.append(h("secrets", "TABLE DATA", "vault", "supabase_admin", data=True))
    out.append("COPY vault.secrets (id, name, secret) FROM stdin;\n")
    out.append(f"{user_id(999)}\tstripe\tencrypted\n\\.\n\n\n")
    out.append(h("todos_id_seq", "SEQUENCE SET", "public", "postgres"))
    out.append(f"SELECT pg_catalog.setval('public.todos_id_seq', {2 * rows}, true);\n\n\n")
    for table, column, schema in (("users", "id", "auth"), ("audit_log", "id", "public"),
                                  ("profiles", "id", "public"), ("todos", "id", "public")):  # fmt: skip
        out.append(h(f"{table} {table}_pkey", "CONSTRAINT", schema, "postgres"))
        out.append(f"ALTER TABLE ONLY {schema}.{table}\n    ADD CONSTRAINT {table}_pkey PRIMARY KEY ({column});\n\n\n")
    out.append(h("todos_user_id_idx", "INDEX", "public", "postgres"))
    out.append("CREATE INDEX todos_user_id_idx ON public.todos USING btree (user_id);\n\n\n")
    out.append(h("todos todos_set_updated_at", "TRIGGER", "public", "postgres"))
    out.append("CREATE TRIGGER todos_set_updated_at BEFORE INSERT OR UPDATE ON public.todos FOR EACH ROW "
               "EXECUTE FUNCTION public.set_updated_at();\n\n\n")  # fmt: skip
    out.append(h("profiles profiles_id_fkey", "FK CONSTRAINT", "public", "postgres"))
    out.append("ALTER TABLE ONLY public.profiles\n    ADD CONSTRAINT profiles_id_fkey FOREIGN KEY (id) "
               "REFERENCES auth.users(id) ON DELETE CASCADE;\n\n\n")  # fmt: skip
    out.append(h("todos todos_user_id_fkey", "FK CONSTRAINT", "public", "postgres"))
    out.append("ALTER TABLE ONLY public.todos\n    ADD CONSTRAINT todos_user_id_fkey FOREIGN KEY (user_id) "
               "REFERENCES public.profiles(id);\n\n\n")  # fmt: skip
    out.append(h("todos Users see their own todos", "POLICY", "public", "postgres"))
    out.append(
        'CREATE POLICY "Users see their own todos" ON public.todos FOR SELECT TO authenticated '
        "USING ((auth.uid() = user_id));\n\n\n"
    )
    out.append(h("profiles Profiles are public", "POLICY", "public", "postgres"))
    out.append('CREATE POLICY "Profiles are public" ON public.profiles FOR SELECT USING (true);\n\n\n')
    out.append(h("todos", "ROW SECURITY", "public", "postgres"))
    out.append("ALTER TABLE public.todos ENABLE ROW LEVEL SECURITY;\n\n")
    out.append(h("profiles", "ROW SECURITY", "public", "postgres"))
    out.append("ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;\n\n")
    out.append(h("supabase_realtime", "PUBLICATION", "-", "postgres"))
    out.append("CREATE PUBLICATION supabase_realtime WITH (publish = 'insert, update, delete, truncate');\n\n\n"
               "ALTER PUBLICATION supabase_realtime OWNER TO postgres;\n\n")  # fmt: skip
    out.append(h("SCHEMA auth", "ACL", "-", "supabase_admin"))
    for grant in ("USAGE ON SCHEMA auth TO anon", "USAGE ON SCHEMA auth TO authenticated",
                  "ALL ON SCHEMA auth TO supabase_auth_admin", "USAGE ON SCHEMA auth TO dashboard_user"):  # fmt: skip
        out.append(f"GRANT {grant};\n")
    out.append("\n\n")
    out.append(h("SCHEMA public", "ACL", "-", "pg_database_owner"))
    out.append("GRANT USAGE ON SCHEMA public TO anon;\nGRANT USAGE ON SCHEMA public TO authenticated;\n"
               "GRANT USAGE ON SCHEMA public TO service_role;\n\n\n")  # fmt: skip
    out.append(h("FUNCTION uid()", "ACL", "auth", "supabase_auth_admin"))
    out.append("GRANT ALL ON FUNCTION auth.uid() TO dashboard_user;\n\n\n")
    for table in ("profiles", "todos"):
        out.append(h(f"TABLE {table}", "ACL", "public", "postgres"))
        out.append(
            f"GRANT ALL ON TABLE public.{table} TO anon;\nGRANT ALL ON TABLE public.{table} TO authenticated;\n"
            f"GRANT ALL ON TABLE public.{table} TO service_role;\n\n\n"
        )
    out.append(h("SEQUENCE todos_id_seq", "ACL", "public", "postgres"))
    out.append("GRANT ALL ON SEQUENCE public.todos_id_seq TO authenticated;\n\n\n")
    out.append(h("TABLE users", "ACL", "auth", "supabase_auth_admin"))
    out.append("SET SESSION AUTHORIZATION supabase_auth_admin;\nGRANT SELECT ON TABLE auth.users TO dashboard_user;\n"
               "RESET SESSION AUTHORIZATION;\n\n\n")  # fmt: skip
    out.append(h("DEFAULT PRIVILEGES FOR TABLES", "DEFAULT ACL", "public", "postgres"))
    out.append("ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT ALL ON TABLES TO anon;\n\n\n")
    out.append(_db_end("pgkey"))
    return "".join(out)


def _at(n: int) -> str:
    return (BASE_TIME + timedelta(minutes=n)).isoformat(sep=" ")


def write_cluster_dump(path: Path, rows: int = 50, *, gz: bool = False, started: str | None = None) -> Path:
    data = cluster_dump_text(rows, started).encode()
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    return path
