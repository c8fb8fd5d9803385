import { render } from "preact";
import { App } from "./App";
import "./style.css";
import { applyTheme, storedTheme } from "./theme";

applyTheme(storedTheme());

render(<App />, document.getElementById("app")!);
