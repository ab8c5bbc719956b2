// Must NOT compile: the generated types know `title` is a string and `status` an enum.
import createClient from "openapi-fetch";
import type { paths } from "./schema";

const api = createClient<paths>({ baseUrl: "http://localhost" });

export async function wrong(): Promise<void> {
  await api.POST("/v1/collections/tasks/documents", {
    body: { title: 42, status: "todo" },
  });
  const page = await api.GET("/v1/collections/tasks/documents");
  const count: number = page.data?.items[0]?.data.title ?? 0;
  console.log(count);
}
