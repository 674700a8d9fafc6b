import { Layout } from "@/web/dashboard/components/Layout.tsx";

export interface ErrorPageProps {
  status: number;
  title: string;
  message: string;
  requestId?: string;
}

export function ErrorPage(p: ErrorPageProps) {
  return (
    <Layout title={p.title} narrow>
      <div class="error-page">
        <p class="error-code" aria-hidden="true">{p.status}</p>
        <h1>{p.title}</h1>
        <p>{p.message}</p>
        <p class="button-row">
          <a class="button button-primary" href="/dashboard">Go to your projects</a>
        </p>
        {p.requestId && (
          <p class="hint">
            If you report this, mention request <code>{p.requestId}</code>.
          </p>
        )}
      </div>
    </Layout>
  );
}
