import ProjectList from "@/web/dashboard/islands/ProjectList.tsx";
import type { ProjectSummary } from "@/shared/project.ts";
import { Field, FormError, PostForm } from "@/web/dashboard/components/Form.tsx";
import { Island } from "@/web/dashboard/components/Island.tsx";
import { Layout } from "@/web/dashboard/components/Layout.tsx";

export interface ProjectsPageProps {
  projects: ProjectSummary[];
  quota: { used: number; limit: number };
  /** The create form's state after a refused submission. */
  form?: { name?: string; nameError?: string; error?: string };
}

export function ProjectsPage({ projects, quota, form }: ProjectsPageProps) {
  const full = quota.used >= quota.limit;
  return (
    <Layout title="Projects">
      <div class="page-head">
        <h1>Projects</h1>
        <p class="muted">
          {quota.used} of {quota.limit} projects used
        </p>
      </div>

      <section aria-labelledby="new-project" class="card">
        <h2 id="new-project">New project</h2>
        <FormError message={form?.error} />
        <PostForm action="/dashboard/projects" class="inline-create" label="New project" noValidate>
          <Field
            id="project-name"
            name="name"
            label="Project name"
            value={form?.name}
            error={form?.nameError}
            hint="1 to 64 characters. You can change it later through the API."
            maxLength={64}
            required
            autocomplete="off"
            autofocus={!!form}
          />
          <button type="submit" class="button button-primary" disabled={full}>
            Create project
          </button>
          {full && (
            <p class="hint">
              You have reached your quota. Delete a project to create another.
            </p>
          )}
        </PostForm>
      </section>

      <section aria-labelledby="your-projects">
        <h2 id="your-projects">Your projects</h2>
        <Island name="ProjectList" component={ProjectList} props={{ projects }} />
      </section>
    </Layout>
  );
}
