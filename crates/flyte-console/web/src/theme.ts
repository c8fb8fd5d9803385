// The colour theme: the system's (prefers-color-scheme) unless one was chosen in the header;
// the choice is kept in localStorage and applied as data-theme on <html>.
export type Theme = "system" | "light" | "dark";
const KEY = "flyte-console-theme";

export function storedTheme(storage: Pick<Storage, "getItem"> | undefined = globalThis.localStorage): Theme {
  try {
    const t = storage?.getItem(KEY);
    return t === "light" || t === "dark" ? t : "system";
  } catch {
    return "system"; // storage refused (privacy settings)
  }
}

export function applyTheme(theme: Theme, root: HTMLElement = document.documentElement, storage: Pick<Storage, "setItem" | "removeItem"> | undefined = globalThis.localStorage) {
  if (theme === "system") root.removeAttribute("data-theme");
  else root.setAttribute("data-theme", theme);
  try {
    if (theme === "system") storage?.removeItem(KEY);
    else storage?.setItem(KEY, theme);
  } catch {
    // Not kept across visits; applied anyway.
  }
}
