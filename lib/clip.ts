/** Bounding text that people read: error messages, reasons. */

/** `text` cut to its first `max` characters with `marker` after, or as it is when it fits. */
export function clip(text: string, max: number, marker = '...'): string {
  return text.length > max ? `${text.slice(0, max)}${marker}` : text;
}
