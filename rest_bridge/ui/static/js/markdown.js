// A model's Markdown as HTML that is safe to insert: marked renders it, DOMPurify then strips
// whatever could run (scripts, event handlers, javascript: links, iframes...).
import { marked } from "../vendor/marked-18.2.1.mjs";

export function markdownToSafeHtml(text) {
  return DOMPurify.sanitize(marked.parse(text ?? ""));
}
