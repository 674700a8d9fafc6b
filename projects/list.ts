// The listing is a statement on the projects table, so it lives in queries.ts; the web
// routes import it from here.
export { listProjects, type ListQuery } from "./queries.ts";
