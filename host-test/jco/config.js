// wasi:config/store@0.2.0-draft-2024-09-27 for jco: the variables (Spin's
// names) come from the JSON in WECOM_AUTH_VARIABLES, or from setVariables().

let variables = JSON.parse(process.env.WECOM_AUTH_VARIABLES || '{}');

export function setVariables(map) {
  variables = { ...map };
}

export const store = {
  get(key) {
    return variables[key];
  },
  getAll() {
    return Object.entries(variables);
  },
};
