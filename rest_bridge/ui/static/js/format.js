// How figures read on the page.

export function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KB", "MB", "GB", "TB"];
  const i = Math.min(Math.floor(Math.log(n) / Math.log(1000)), units.length - 1);
  return `${(n / 1000 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 60) return `${seconds.toFixed(0)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
  const hours = Math.floor(seconds / 3600);
  return `${hours} h ${Math.floor((seconds % 3600) / 60)} min`;
}

export function when(iso) {
  if (!iso) return "never";
  const seconds = (new Date(iso) - Date.now()) / 1000;
  return seconds > 0 ? `in ${duration(seconds)}` : "now";
}

export function rate(perSecond, unit) {
  return `${(perSecond ?? 0).toFixed(1)} ${unit}/s`;
}
